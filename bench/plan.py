"""Times `planner.allocation.plan_search`: the grid search alone and with a 200-draw optimum_spread.

Run: .venv/bin/python bench/plan.py [--repeat 50]

The loss model is the law engine's `precision` law (`fits.laws.predict_loss`, the one the API uses) at
Kumar et al.'s Table 2 constants (`fits.laws.KUMAR_TABLE2`); 200 bootstrap draws perturb every constant by
2% (log-normal, seed 0) and are evaluated in one `predict_loss_draws` call of shape (200, K, J).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stack import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fits.laws import KUMAR_TABLE2, RunConfig, predict_loss, predict_loss_draws  # noqa: E402
from planner.allocation import PlanConstraints, plan_search  # noqa: E402 (after the path tweak)


def engine_losses(draws: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The point loss and the all-draws loss in plan_search's LossFn shape."""
    params = {**KUMAR_TABLE2, "C_w": 1.0, "C_a": 1.0, "C_kv": 1.0}
    names = list(params)
    rng = np.random.default_rng(0)
    matrix = np.array([[params[k] * np.exp(rng.normal(0, 0.02)) for k in names] for _ in range(draws)])

    def point(n: Any, d: Any, wb: Any, ab: Any, kvb: Any, post: Any) -> Any:
        bits = {"weight_bits": wb, "activation_bits": ab, "kv_bits": kvb, "post_train_bits": post}
        return predict_loss("precision", params, RunConfig(n_params=n, n_tokens=d, **bits))

    def all_draws(n: Any, d: Any, wb: Any, ab: Any, kvb: Any, post: Any) -> Any:
        bits = {"weight_bits": wb, "activation_bits": ab, "kv_bits": kvb, "post_train_bits": post}
        return predict_loss_draws("precision", matrix, names, {}, RunConfig(n_params=n, n_tokens=d, **bits))

    return point, all_draws


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    loss, draws = engine_losses(args.draws)
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
    print(f"{machine_line()}; NumPy {np.__version__}; one process")
    print(f"{'case':62s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, fn in cases:
        p50, p99 = timed(fn, args.repeat)
        print(f"{name:62s} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
