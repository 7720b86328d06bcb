"""Times `planner.allocation.plan_search`: the grid search alone and with a 200-draw optimum_spread.

Run: .venv/bin/python bench/plan.py [--repeat 50]

The loss model is Kumar et al.'s unified law at the Table 2 constants (docs/laws.md 3.1, 4.3, 5), written
inline so the benchmark measures the search, not the law engine; 200 bootstrap draws perturb every
constant by 2% (log-normal, seed 0) and are evaluated in one broadcast call of shape (200, K, J).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner.allocation import PlanConstraints, plan_search  # noqa: E402 (after the path tweak)

KUMAR = {
    "A": 4.299e3,
    "B": 1.806e4,
    "E": 2.7648,
    "alpha": 0.4965,
    "beta": 0.4965,
    "gamma_w": 2.6745,
    "n_w": 0.3037,
    "gamma_a": 2.2102,
    "n_a": 1.4072,
    "gamma_kv": 0.9578,
    "n_kv": 2.4185,
    "C_T": 0.0598,
    "gamma_D": 0.5068,
    "gamma_N": 0.3439,
    "gamma_post": 0.5907,
    "n_post": 1.1277,
}


def kumar_loss(p):
    def factor(bits, gamma, offset):
        return 1.0 - np.exp(-bits / gamma + offset)

    def loss(n, d, wb, ab, kvb, post):
        n_eff = (
            n
            * factor(wb, p["gamma_w"], p["n_w"])
            * factor(ab, p["gamma_a"], p["n_a"])
            * factor(kvb, p["gamma_kv"], p["n_kv"])
        )
        ok = n_eff > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            n_eff = np.where(ok, n_eff, 1.0)
            value = p["E"] + p["A"] * n_eff ** -p["alpha"] + p["B"] * d ** -p["beta"]
            if post is not None:
                ok = ok & (wb > post) & (ab > post) & (kvb > post)
                robust = (1 - np.exp(-(wb - post))) * (1 - np.exp(-(ab - post))) * (1 - np.exp(-(kvb - post)))
                value = value + (
                    p["C_T"]
                    * np.exp(-post / p["gamma_post"] + p["n_post"])
                    * d ** p["gamma_D"]
                    / n_eff ** p["gamma_N"]
                    * robust
                )
        return np.where(ok, value, np.nan)

    return loss


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    draw_params = {k: (v * np.exp(rng.normal(0, 0.02, args.draws))).reshape(args.draws, 1, 1) for k, v in KUMAR.items()}
    loss = kumar_loss(KUMAR)
    draws = kumar_loss(draw_params)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("untied bits 3..16 (2744 configs), no draws", lambda: plan_search(loss, 1e22)),
        (f"untied bits 3..16, {args.draws} draws", lambda: plan_search(loss, 1e22, draws=draws)),
        (
            f"untied, post_train_bits=4, memory cap 8 GB, {args.draws} draws",
            lambda: plan_search(
                loss,
                1e22,
                draws=draws,
                constraints=PlanConstraints(post_train_bits=4, weights_memory_max_bytes=8e9),
            ),
        ),
        (
            f"untied, hardware cost model on H100, {args.draws} draws",
            lambda: plan_search(loss, 1e22, cost_model="hardware", hardware="h100", draws=draws),
        ),
        (
            f"tied bits 3..16 (14 configs), {args.draws} draws",
            lambda: plan_search(loss, 1e22, draws=draws, tie_bits=True),
        ),
        (
            f"fixed N = 1e9, untied, {args.draws} draws",
            lambda: plan_search(loss, 1e22, draws=draws, constraints=PlanConstraints(n_params=1e9)),
        ),
    ]
    try:  # the law engine, when present: the loss model the API will use
        from planner.laws.prediction import predict_loss, predict_loss_draws

        params = {**KUMAR, "C_w": 1.0, "C_a": 1.0, "C_kv": 1.0}
        names = list(params)
        draw_matrix = np.array(
            [[float(draw_params[k][i, 0, 0]) if k in draw_params else 1.0 for k in names] for i in range(args.draws)]
        )

        def engine(n, d, wb, ab, kvb, post):
            return predict_loss(
                "precision",
                params,
                n_params=n,
                n_tokens=d,
                weight_bits=wb,
                activation_bits=ab,
                kv_bits=kvb,
                post_train_bits=post,
            )

        def engine_draws(n, d, wb, ab, kvb, post):
            return predict_loss_draws(
                "precision",
                draw_matrix,
                names,
                {},
                n_params=n,
                n_tokens=d,
                weight_bits=wb,
                activation_bits=ab,
                kv_bits=kvb,
                post_train_bits=post,
            )

        cases.append(("planner.laws predict_loss, untied, no draws", lambda: plan_search(engine, 1e22)))
        cases.append(
            (
                f"planner.laws predict_loss, untied, {args.draws} draws",
                lambda: plan_search(engine, 1e22, draws=engine_draws),
            )
        )
    except ImportError:
        print("planner.laws not importable: law-engine cases skipped")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; numpy {np.__version__}; python {platform.python_version()}")
    print(f"{'case':62s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, fn in cases:
        p50, p99 = timed(fn, args.repeat)
        print(f"{name:62s} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
