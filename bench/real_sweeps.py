"""The law engine on real BF16 sweeps: held-out error, screened runs and the law ranking (docs/laws-engine.md,
"Real sweeps"). Calls fits.laws directly; prints figures, asserts nothing (tests/fits/test_real_sweeps.py
asserts the targets).

    .venv/bin/python bench/real_sweeps.py

Sweeps (fits/data/*/README.md):
- OLMo 2's ladder: fit 190M-1.3B (24 runs), predict the 3.2B runs (5 budgets plus the 1xC rerun).
- Gemstones: fit N <= 550M (140 cooldowns), predict the 1.0B-2.0B shapes (59).
- OLMo's three smallest sizes (18 runs) as a 3-size family: the backtest scheme and ranking it gets; and a
  synthetic 3-size precision sweep (Kumar's grid at 30M-110M), where the precision law has bits to fit.
For each: objective (huber, least_squares) x screening rule (off, on), plus a hand-made drop for comparison;
the backtest of each scheme (largest_n, largest_compute) on the fitted runs; and the ranking of all three laws.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 -- thread limits must be set before NumPy loads its BLAS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fits.laws import Observations, fit_point, get_law, kumar_synthetic  # noqa: E402
from fits.laws.backtest import SCHEMES, run_backtest  # noqa: E402
from fits.laws.datasets import load_gemstones, load_olmo_ladder  # noqa: E402
from fits.laws.screening import fit_screened, run_residuals  # noqa: E402
from fits.ranking import LawFit, rank_laws  # noqa: E402

OBJECTIVES = ("huber", "least_squares")
LAWS = ("chinchilla", "precision", "fp")


def held_out_rmse(law: str, params: dict[str, float], held: Observations) -> float:
    r = run_residuals(get_law(law), params, held)
    return float(np.sqrt(np.mean(r * r)))


def sizes_text(records: list[dict[str, float]]) -> str:
    if not records:
        return "none"
    by_size: dict[float, int] = {}
    for rec in records:
        by_size[rec["n_params"]] = by_size.get(rec["n_params"], 0) + 1
    return ", ".join(f"{count} at {n / 1e6:.0f}M" for n, count in sorted(by_size.items()))


def extrapolation(name: str, train: Observations, held: Observations, hand: np.ndarray | None, hand_label: str) -> None:
    print(f"\n## {name}: fit {train.n_runs} runs, predict {held.n_runs} (rmse of log loss on the held-out runs)")
    for objective in OBJECTIVES:
        for screen in (False, True):
            start = time.perf_counter()
            point = fit_point("chinchilla", train, objective=objective, screen_outliers=screen)
            took = time.perf_counter() - start
            rmse = held_out_rmse("chinchilla", point.params | point.fixed, held)
            bt = point.backtest
            print(
                f"  {objective:13s} rule {'on ' if screen else 'off'}  held-out {rmse:.5f}  "
                f"screened: {sizes_text(point.screened):24s} backtest {bt.get('scheme')} "
                f"{bt.get('rmse_log_runs', float('nan')):.4f} on {int(bt.get('n_held_out_runs', 0))} runs  "
                f"({took:.1f} s)"
            )
        if hand is not None:
            point = fit_point("chinchilla", train.subset(hand), objective=objective, screen_outliers=False)
            rmse = held_out_rmse("chinchilla", point.params | point.fixed, held)
            print(f"  {objective:13s} by hand: {hand_label}  held-out {rmse:.5f}")
        point = fit_point("fp", train, objective=objective)
        rmse = held_out_rmse("fp", point.params | point.fixed, held)
        print(f"  {objective:13s} fp law, rule on  held-out {rmse:.5f}  screened: {sizes_text(point.screened)}")


def schemes(name: str, data: Observations) -> None:
    print(f"\n## {name}: backtest of each scheme (chinchilla, huber, rule on; {data.n_runs} runs)")
    law = get_law("chinchilla")
    point, _ = fit_screened(law, data, objective="huber", seed=0, tie_exponents=False, screen_outliers=True)
    for scheme in SCHEMES:
        record, notes = run_backtest(
            law, data, point, objective="huber", seed=0, tie_exponents=False, screen_outliers=True, scheme=scheme
        )
        sizes = ", ".join(f"{n / 1e6:.0f}M" for n in record["held_out_n_params"])
        score = record.get("rmse_log_runs")
        text = f"{score:.4f}" if score is not None else "; ".join(notes)
        print(f"  {scheme:16s} held out {int(record['n_held_out'])} runs at {sizes}: {text}")


def ranking(name: str, data: Observations, objective: str, laws: tuple[str, ...] = LAWS) -> None:
    fits = []
    details = []
    for i, law in enumerate(laws):
        point = fit_point(law, data, objective=objective)
        fits.append(
            LawFit(
                law=law,
                fit_id=i,
                version=1,
                backtest=point.backtest,
                n_params_fitted=len(point.params),
                n_runs=int(point.metrics["n_runs"]),
                warnings=point.warnings,
                n_screened=len(point.screened),
                # As the service ranks them (fits.selectors.law_ranking): fits of one snapshot are paired run by run.
                models_bits=bool(get_law(law).bit_dims),
                data_fingerprint=name,
            )
        )
        score = point.backtest.get("rmse_log_runs", float("nan"))
        details.append(f"{law} {score:.4f} ({len(point.screened)} screened)")
    result = rank_laws(fits)
    basis = result.basis or {}
    print(
        f"  {name} [{objective}]: best {result.best}; scores {', '.join(details)}; basis {basis.get('scheme')} on "
        f"{basis.get('n_held_out_runs')} runs at N = "
        f"{', '.join(f'{n / 1e6:.0f}M' for n in basis.get('held_out_n_params', []))}"
    )
    for warning in result.warnings:
        print(f"    warning: {warning}")


def main() -> None:
    olmo = load_olmo_ladder()
    small = olmo.n_params < 2e9
    tokens_per_param = olmo.n_tokens / olmo.n_params
    olmo_train = olmo.subset(small)
    extrapolation(
        "OLMo ladder",
        olmo_train,
        olmo.subset(~small),
        (tokens_per_param > 15)[small],
        "without the 0.5xC runs",
    )
    gem = load_gemstones()
    fitted = gem.n_params <= 5.5e8
    gem_train = gem.subset(fitted)
    shallow = np.isin(gem.n_params, [103814400.0, 517499136.0])  # 768x3 and 1792x7: the two shallowest shapes
    extrapolation("Gemstones", gem_train, gem.subset(~fitted), (~shallow)[fitted], "without the 768x3, 1792x7 shapes")

    three = olmo.subset(np.isin(olmo.n_params, np.unique(olmo.n_params)[:3]))
    for label, data in (("OLMo 190M-1.3B", olmo_train), ("Gemstones <= 550M", gem_train), ("OLMo 3 sizes", three)):
        schemes(label, data)
    print("\n## Ranking of the three laws (BF16 runs: precision = chinchilla; fp has one format, delta and nu held)")
    for objective in OBJECTIVES:
        for label, data in (("OLMo 190M-1.3B", olmo_train), ("Gemstones <= 550M", gem_train), ("OLMo 3 sizes", three)):
            ranking(label, data, objective)
    print("\n## A 3-size precision sweep (synthetic: Kumar's grid at 30M, 60M, 110M, 0.5% noise; no fp format)")
    kumar, _ = kumar_synthetic(n_values=(30e6, 60e6, 110e6))
    ranking("Kumar 3 sizes", kumar, "huber", laws=("chinchilla", "precision"))


if __name__ == "__main__":
    main()
