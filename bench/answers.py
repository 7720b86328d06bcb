"""Answers that know their limits (issue 23): the figures of docs/laws-engine.md, "A verdict on every fit", "Runs
the law cannot describe" and "Law comparison", from fits.laws directly (the API's targets are asserted by
tests/fits/test_real_sweeps_api.py). Prints figures, asserts nothing.

    .venv/bin/python bench/answers.py [--draws 40]

1. Gadre et al.'s C4 runs (fits/data/gadre_c4): fit every size up to 411M, predict the 1.4B and 6.9B runs, with the
   rule off, on, and by hand (without the runs above 5 nats); which runs the rule leaves out and why.
2. The verdict of each law's fit of the shipped sweeps (OLMo, Gemstones, Gadre, Epoch), Kumar's synthetic grid,
   the low-bit synthetic family and the `bulk` family whose loss does not depend on N or D.
3. The ranking of each family's laws with run-level comparison (ties the held-out runs cannot tell apart go to
   the simpler law) and the bits rule; the low-bit family's domain (every training configuration predicted).
4. How often the high-loss edge check screens runs of clean synthetic families.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 -- thread limits must be set before NumPy loads its BLAS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fits.laws import (  # noqa: E402
    FitResult,
    Observations,
    RunConfig,
    fit_law,
    fit_point,
    get_law,
    kumar_synthetic,
    load_chinchilla_epoch,
    load_gadre_c4,
    load_gemstones,
    load_olmo_ladder,
    low_bit_synthetic,
)
from fits.laws.quality import fit_quality  # noqa: E402
from fits.laws.screening import run_residuals  # noqa: E402
from fits.ranking import LawFit, paired, rank_laws  # noqa: E402

OBJECTIVE = "least_squares"  # the service's default (fits.models.DEFAULT_OBJECTIVE)


def rmse(law: str, params: dict[str, float], held: Observations) -> float:
    r = run_residuals(get_law(law), params, held)
    return float(np.sqrt(np.mean(r * r)))


def no_signal_runs(count: int = 1000) -> Observations:
    """The `bulk` family of the ingest benchmark (bench/ingest.py): losses that do not depend on N or D."""
    i = np.arange(count)
    n = 1e7 * (1 + i % 40)
    return Observations.build(
        n_params=n,
        n_tokens=20 * n * (1 + i % 5),
        weight_bits=np.array([16.0, 8.0, 6.0, 4.0])[i % 4],
        final_loss=2.5 + (i % 97) / 100,
    )


def with_bf16(data: Observations) -> Observations:
    """The runs with their format given (bf16, E8M7), so the floating-point law applies too."""
    return Observations.build(
        n_params=data.n_params,
        n_tokens=data.n_tokens,
        final_loss=data.final_loss,
        exponent_bits=np.full(data.n_runs, 8.0),
        mantissa_bits=np.full(data.n_runs, 7.0),
    )


def gadre() -> None:
    data = load_gadre_c4()
    train, held = data.subset(data.n_params < 1e9), data.subset(data.n_params > 1e9)
    print(f"\n## Gadre C4: fit {train.n_runs} runs (11M-411M), predict {held.n_runs} (1.4B, 6.9B)")
    for objective in ("huber", "least_squares"):
        for screen in (False, True):
            start = time.perf_counter()
            point = fit_point("chinchilla", train, objective=objective, screen_outliers=screen)
            took = time.perf_counter() - start
            checks: dict[str, int] = {}
            for entry in point.screened:
                checks[entry["check"]] = checks.get(entry["check"], 0) + 1
            print(
                f"  chinchilla {objective:13s} rule {'on ' if screen else 'off'} held-out "
                f"{rmse('chinchilla', point.params | point.fixed, held):.4f}  screened {checks or 'none'} "
                f"({took:.1f} s)"
            )
        hand = fit_point("chinchilla", train.subset(train.final_loss < 5.0), objective=objective, screen_outliers=False)
        print(
            f"  chinchilla {objective:13s} by hand (no run above 5 nats) held-out "
            f"{rmse('chinchilla', hand.params, held):.4f}"
        )
    fp = fit_point("fp", with_bf16(train), objective=OBJECTIVE)
    print(f"  fp (bf16 given) {OBJECTIVE} rule on held-out {rmse('fp', fp.params | fp.fixed, with_bf16(held)):.4f}")
    point = fit_point("chinchilla", train, objective=OBJECTIVE)
    for entry in point.screened:
        print(
            f"    {entry['check']:15s} N {entry['n_params']:.3g} D/N {entry['n_tokens'] / entry['n_params']:5.0f} "
            f"loss {entry['final_loss']:.3f}: {entry['reason']}"
        )


def verdicts(draws: int) -> dict[str, dict[str, FitResult]]:
    olmo, gems, gad = load_olmo_ladder(), load_gemstones(), load_gadre_c4()
    families = {
        "OLMo 190M-1.3B": olmo.subset(olmo.n_params < 2e9),
        "OLMo 190M-760M": olmo.subset(olmo.n_params < 1e9),
        "Gemstones <= 550M": gems.subset(gems.n_params <= 5.5e8),
        "Gadre C4 <= 411M": gad.subset(gad.n_params < 1e9),
        "Gadre C4, bf16 given": with_bf16(gad.subset(gad.n_params < 1e9)),
        "Epoch (Chinchilla)": load_chinchilla_epoch(),
        "Kumar synthetic": kumar_synthetic()[0],
        "low-bit synthetic": low_bit_synthetic(),
        "bulk (no signal)": no_signal_runs(),
    }
    print(f"\n## Verdicts ({OBJECTIVE}, rule on, {draws} bootstrap draws)")
    out: dict[str, dict[str, FitResult]] = {}
    for name, data in families.items():
        out[name] = {}
        for law in ("chinchilla", "precision", "fp"):
            if not get_law(law).applies_to(data):
                continue
            start = time.perf_counter()
            result = fit_law(law, data, objective=OBJECTIVE, n_bootstrap=draws, seed=1)
            out[name][law] = result
            q = fit_quality(result)
            m, b = result.metrics, result.backtest
            print(
                f"  {name:20s} {law:10s} {q.level:8s} adj. R2 {m.get('r2_log_adjusted', float('nan')):.4f}  "
                f"noise {m.get('noise_log', float('nan')):.4f}  backtest {b.get('rmse_log_runs', float('nan')):.4f} "
                f"(constant {b.get('rmse_log_constant', float('nan')):.4f})  screened {len(result.screened)}  "
                f"({time.perf_counter() - start:.0f} s)"
            )
            for reason in q.reasons:
                print(f"      - {reason}")
    return out


def rankings(results: dict[str, dict[str, FitResult]]) -> None:
    print("\n## Rankings (run-level ties, bits rule, verdicts)")
    for name, by_law in results.items():
        fits = []
        for i, (law, result) in enumerate(by_law.items()):
            q = fit_quality(result)
            rng = result.data_range
            fits.append(
                LawFit(
                    law=law,
                    fit_id=i,
                    version=1,
                    backtest=result.backtest,
                    n_params_fitted=len(result.params),
                    n_runs=int(result.metrics["n_runs"]),
                    warnings=result.warnings,
                    n_screened=len(result.screened),
                    quality=q.level,
                    quality_reasons=q.reasons,
                    models_bits=bool(get_law(law).bit_dims),
                    varies_bits=any(
                        rng.get(f"{k}_min") != rng.get(f"{k}_max")
                        for k in ("weight_bits", "activation_bits", "kv_bits")
                    ),
                    data_fingerprint=name,
                )
            )
        ranking = rank_laws(fits)
        fit_of = {f.law: f for f in fits}
        for a, b in (("fp", "chinchilla"), ("precision", "chinchilla")):
            if a in fit_of and b in fit_of:
                p = paired(fit_of[a], fit_of[b])
                if p is not None:
                    t = p.mean_difference / p.standard_error if p.standard_error > 0 else float("nan")
                    print(
                        f"  {name:20s} {a} vs {b} on {p.n_runs} held-out runs: RMSE {p.rmse_first:.4f} against "
                        f"{p.rmse_second:.4f}, t = {t:+.2f}"
                    )
        order = ", ".join(
            f"{e.law} {e.score:.4f}" if e.score is not None else f"{e.law} unranked" for e in ranking.entries
        )
        print(f"  {name:20s} best {ranking.best}: {order}")
        for entry in ranking.entries:
            if entry.reason:
                print(f"      {entry.law}: {entry.reason}")


def low_bits() -> None:
    data = low_bit_synthetic()
    print(f"\n## Low-bit synthetic ({data.n_runs} runs, weights and activations at 2-16 bits)")
    for law in ("precision", "chinchilla"):
        point = fit_point(law, data, objective=OBJECTIVE)
        predicted = get_law(law).predict(point.params | point.fixed, RunConfig.of_runs(data))
        print(
            f"  {law:10s} fitted {int(point.metrics['n_runs'])}, screened {len(point.screened)}, training "
            f"configurations predicted {int(np.isfinite(predicted).sum())} of {data.n_runs}; backtest "
            f"{point.backtest.get('rmse_log_runs', float('nan')):.4f}"
        )


EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def clean_edges(seeds: int = 20) -> None:
    """How often the edge check (c) screens runs of clean synthetic families (Epoch's constants, 0.25-8x tokens)."""
    print(f"\n## Clean synthetic families: fits whose high-loss edge check screened runs ({seeds} seeds each)")
    for label, sizes, noise in (
        ("5 sizes, 0.5% noise", (10e6, 20e6, 50e6, 100e6, 200e6), 0.005),
        ("4 sizes, 1% noise", (10e6, 30e6, 100e6, 300e6), 0.01),
    ):
        counts = []
        for seed in range(seeds):
            n = np.repeat(np.array(sizes), 6)
            d = 20 * n * np.tile([0.25, 0.5, 1, 2, 4, 8], len(sizes))
            loss = EPOCH["E"] + EPOCH["A"] / n ** EPOCH["alpha"] + EPOCH["B"] / d ** EPOCH["beta"]
            loss = loss * (1 + noise * np.random.default_rng(seed).standard_normal(n.shape))
            point = fit_point(
                "chinchilla", Observations.build(n_params=n, n_tokens=d, final_loss=loss), objective=OBJECTIVE
            )
            counts.append(sum(1 for entry in point.screened if entry["check"] == "high_loss_edge"))
        print(f"  {label}: {sum(c > 0 for c in counts)} of {seeds} fits; runs screened per fit {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=40, help="bootstrap draws per fit (intervals for the verdict)")
    args = parser.parse_args()
    gadre()
    clean_edges()
    low_bits()
    rankings(verdicts(args.draws))


if __name__ == "__main__":
    main()
