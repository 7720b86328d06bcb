"""Whole training curves: the figures of docs/curves.md ("Measured"). Calls fits.laws directly; prints, asserts
nothing (tests/fits/test_curves_real.py asserts the targets).

    OMP_NUM_THREADS=1 .venv/bin/python bench/curves.py [--quick] [--cases]

1. Schedules built from their descriptions against the logged lr of all 57 shipped curves.
2. The multi-power law with the authors' published parameters (MultiPower README) on their curves.
3. The schedule-blind baseline (power law in steps) on 400M cosine_72000, as the issue measured it.
4. MultiPower targets: cosine and WSD runs of 25M, 100M and 400M forecast from 25% / 50% of their steps with one other
   decayed run of the size (every admissible lender, each in turn); 25M and 100M are the design set.
5. The same targets with every admissible run of the size known (the family protocol); and with only smaller
   sizes' decayed runs known (annealing borrowed across sizes).
6. OLMo 2's ladder: every run forecast from its first half with the rest of the ladder known, per size, for the
   default law, the multi-power law and "auto" (the law with the smaller backtest error in the family).
7. Gemstones: un-cooled checkpoints against cooldown ends, and what each does to a Chinchilla fit (fit_point).
8. Cost: a 100,000-point history (and a 100,000-point lender) fitted and forecast; a refresh after 1,000 more
   points; the effect of binning on the held-out forecasts.
`--quick` skips 5, 6's multipower and auto rows and 8's binning comparison; `--cases` prints every forecast.
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

from fits.laws import Observations, fit_point, load_gemstones  # noqa: E402
from fits.laws.cooldowns import cooldown_gaps, cooled_points  # noqa: E402
from fits.laws.curve_data import (  # noqa: E402
    MULTIPOWER_PUBLISHED,
    MULTIPOWER_SIZES,
    MULTIPOWER_TRAIN,
    load_gemstones_checkpoints,
    load_gemstones_hot,
    load_multipower_curves,
    load_olmo_ladder_curves,
)
from fits.laws.curve_validation import (  # noqa: E402
    DESIGN_SIZES,
    HELD_OUT_SIZES,
    Outcome,
    multipower_cases,
    multipower_cross_size_cases,
    multipower_family_cases,
    olmo_cases,
    run_case,
    summarise,
)
from fits.laws.curves import MAX_POINTS_PER_RUN, bin_history, fit_power, multipower_loss  # noqa: E402
from fits.laws.equations import chinchilla_loss  # noqa: E402
from fits.laws.forecast import FamilyRun, forecast_loss  # noqa: E402
from fits.laws.schedules import ScheduleSpec, build_schedule  # noqa: E402

# The MultiPower README's mean absolute error of the published fits over each size's curves.
PUBLISHED_MAE = {"25M": 0.00376, "100M": 0.00435, "400M": 0.00484}


def schedules() -> None:
    print("## 1. Schedules from their descriptions vs the logged lr")
    worst_mp = 0.0
    for size in MULTIPOWER_SIZES:
        for c in load_multipower_curves(size).values():
            lr = c.schedule.lr[c.steps.astype(int)]
            worst_mp = max(worst_mp, float(np.max(np.abs(lr - c.lr) / c.lr)))
    worst_olmo = 0.0
    for c in load_olmo_ladder_curves().values():
        lr = c.schedule.lr[c.steps.astype(int)]
        worst_olmo = max(worst_olmo, float(np.max(np.abs(lr - c.lr)) / c.plan.peak_lr))
    print(f"MultiPower, 27 curves: largest relative difference {worst_mp:.1e} (the files keep 9 significant digits)")
    print(f"OLMo ladder, 30 curves: largest difference {worst_olmo:.2%} of peak (W&B logs the lr of a nearby step)")


def published() -> None:
    print("\n## 2. Multi-power law with the published parameters (authors' convention: warmup in the drop sum)")
    print("size   MAE all 9 (README)   MAE held-out 6   worst final-loss error")
    for size in MULTIPOWER_SIZES:
        errs, held, finals = [], [], []
        for name, c in load_multipower_curves(size).items():
            pred = multipower_loss(MULTIPOWER_PUBLISHED[size], c.schedule, c.steps, warmup_in_drop=True)
            errs.append(float(np.mean(np.abs(pred - c.loss))))
            if name not in MULTIPOWER_TRAIN:
                held.append(errs[-1])
            finals.append(float(pred[-1] - c.loss[-1]))
        worst = max(finals, key=abs)
        print(
            f"{size:5s}  {np.mean(errs):.5f} ({PUBLISHED_MAE[size]:.5f})     {np.mean(held):.5f}          {worst:+.4f}"
        )


def baseline() -> None:
    print("\n## 3. Schedule-blind baseline, 400M cosine_72000 (final 2.6154)")
    c = load_multipower_curves("400M")["cosine_72000"]
    for frac in (0.25, 0.5):
        m = c.steps <= frac * c.plan.total_steps
        raw = fit_power(c.steps[m], c.loss[m], max_points=100_000).predict(c.final_step) - c.final_loss
        binned = fit_power(c.steps[m], c.loss[m]).predict(c.final_step) - c.final_loss
        print(f"from {frac:.0%}: {raw:+.4f} on the raw points, {binned:+.4f} binned (issue: +0.108 / +0.054)")


def report(title: str, outcomes: list[Outcome], by: str, show_cases: bool) -> None:
    print(f"\n## {title}")
    if show_cases:
        for o in outcomes:
            f = o.forecast
            if f.ok:
                print(
                    f"  {o.case.size:5s} {o.case.label:62s} err {o.error:+.4f}  sd {f.sd:.4f}  "
                    f"baseline {o.baseline_error:+.4f}  law {f.law}  {o.seconds:.2f}s"
                )
            else:
                print(f"  {o.case.label}: no forecast: {f.reason}")
    keys = sorted({(o.case.fraction, getattr(o.case, by)) for o in outcomes}, key=lambda k: (k[0], _size(k[1])))
    print("seen  size   n   MAE     worst   bias     baseline MAE  cover95  cover90  cover80  s/forecast")
    for frac in sorted({k[0] for k in keys}):
        groups = [
            (k[1], [o for o in outcomes if o.case.fraction == frac and getattr(o.case, by) == k[1]])
            for k in keys
            if k[0] == frac
        ]
        held = [o for o in outcomes if o.case.fraction == frac and o.case.size not in DESIGN_SIZES]
        if len(held) < sum(len(g[1]) for g in groups):
            groups.append(("held", held))  # every size but the design set
        groups.append(("all", [o for o in outcomes if o.case.fraction == frac]))
        for name, sub in groups:
            s = summarise(sub)
            print(
                f"{frac:4.0%}  {name:5s} {int(s['n_made']):3d}  {s['mae']:.4f}  {s['worst']:.4f}  {s['bias']:+.4f}  "
                f"{s['baseline_mae']:.4f}        {s['coverage_95']:.2f}     {s['coverage_90']:.2f}     "
                f"{s['coverage_80']:.2f}     {s['seconds']:.2f}"
            )


def _size(name: str) -> float:
    return {"M": 1e6, "B": 1e9}.get(name[-1:], 0.0) * float(name[:-1]) if name[:-1].replace(".", "").isdigit() else 0.0


def cooldowns() -> None:
    print("\n## 7. Gemstones: un-cooled checkpoints vs cooldown ends")
    checkpoints = load_gemstones_checkpoints()
    gaps = cooldown_gaps(checkpoints)
    print(
        f"un-cooled minus cooled loss at the same (N, D) (log-D interpolation): mean {gaps.mean():+.4f}, median "
        f"{np.median(gaps):+.4f}, range {gaps.min():+.4f} .. {gaps.max():+.4f}, {np.mean(gaps > 0):.0%} positive, "
        f"n = {gaps.size}"
    )
    cooled = cooled_points(checkpoints)
    hot = load_gemstones_hot()
    both = Observations.build(
        n_params=np.r_[cooled.n_params, hot.n_params],
        n_tokens=np.r_[cooled.n_tokens, hot.n_tokens],
        final_loss=np.r_[cooled.final_loss, hot.final_loss],
    )
    reference = load_gemstones()
    print("fit on                      E      A        B          alpha   beta    bias vs cooled  D*/N* at 1e21, 1e23")
    for label, data in (("cooled (199)", cooled), ("un-cooled (220)", hot), ("both (419)", both)):
        point = fit_point("chinchilla", data)
        p = {**point.fixed, **point.params}
        pred = chinchilla_loss(p, n_params=reference.n_params, n_tokens=reference.n_tokens)
        ratio = [_optimal_ratio(p, c) for c in (1e21, 1e23)]
        print(
            f"{label:20s}  {p['E']:.3f}  {p['A']:8.1f}  {p['B']:9.1f}  {p['alpha']:.3f}   {p['beta']:.3f}   "
            f"{np.mean(pred - reference.final_loss):+.4f}         {ratio[0]:.0f}, {ratio[1]:.0f}"
        )
    small = reference.n_params <= 550e6
    for label, data in (("cooled", cooled), ("un-cooled", hot)):
        keep = data.n_params <= 550e6
        train = Observations.build(
            n_params=data.n_params[keep], n_tokens=data.n_tokens[keep], final_loss=data.final_loss[keep]
        )
        point = fit_point("chinchilla", train)
        p = {**point.fixed, **point.params}
        pred = chinchilla_loss(p, n_params=reference.n_params[~small], n_tokens=reference.n_tokens[~small])
        err = np.log(pred) - np.log(reference.final_loss[~small])
        print(
            f"fit {label} N <= 550M, predict the 59 cooled 1.0-2.0B points: rmse(log) {np.sqrt(np.mean(err**2)):.4f}, "
            f"bias {np.mean(pred - reference.final_loss[~small]):+.4f} nats"
        )


def _optimal_ratio(p: dict[str, float], flops: float) -> float:
    """D*/N* of the Chinchilla law at compute C = 6 N D (closed form)."""
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
    n_opt = g * (flops / 6.0) ** (b / (a + b))
    return flops / 6.0 / n_opt / n_opt


def cost(compare_binning: bool) -> None:
    print("\n## 8. Cost (one core)")
    total, n = 120_000, 100_000
    spec = ScheduleSpec(total_steps=total, peak_lr=3e-4, warmup_steps=2000, decay="cosine", final_lr=3e-5)
    sched = build_schedule(spec)
    rng = np.random.default_rng(0)
    steps = np.arange(1, total + 1, dtype=np.float64)
    eta = sched.lr[1:] / spec.peak_lr
    clean = 2.5 + 30.0 * np.cumsum(eta) ** -0.5 - 0.08 * (1.0 - eta)  # a cosine run with a loss drop as it decays
    loss = clean + 0.01 * rng.standard_normal(total)
    lender = FamilyRun("lender", "1B", steps, loss, sched)
    for points in (n, n + 1000):
        target = FamilyRun("target", "1B", steps[:points], loss[:points], sched)
        start = time.perf_counter()
        bin_history(target.steps, target.loss)
        binned_s = time.perf_counter() - start
        start = time.perf_counter()
        fc = forecast_loss(target, [lender])
        took = time.perf_counter() - start
        print(
            f"target with {points:,} points + a {steps.shape[0]:,}-point lender, {total:,}-step schedule: binning "
            f"{binned_s * 1e3:.0f} ms, whole forecast (fit, backtest, interval) {took:.2f} s ({fc.status})"
        )
    for law in ("multipower",):
        target = FamilyRun("target", "1B", steps[:n], loss[:n], sched)
        start = time.perf_counter()
        forecast_loss(target, [lender], law=law)
        print(f"the same with law={law}: {time.perf_counter() - start:.2f} s")
    if not compare_binning:
        return
    cases = multipower_cases(("100M", "400M"))
    binned = [run_case(c).forecast.loss for c in cases]
    raw = [run_case(c, max_points=100_000).forecast.loss for c in cases]
    diff = [abs(a - b) for a, b in zip(binned, raw, strict=True) if a is not None and b is not None]
    print(
        f"binning to {MAX_POINTS_PER_RUN} points per run vs none, {len(diff)} MultiPower 100M/400M forecasts (the "
        f"72k-step runs have 546 points): mean |change| {np.mean(diff):.4f}, largest {np.max(diff):.4f} nats"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", action="store_true", help="print every forecast")
    args = parser.parse_args()
    schedules()
    published()
    baseline()
    single = [run_case(c) for c in multipower_cases(DESIGN_SIZES + HELD_OUT_SIZES)]
    report("4. MultiPower, one decayed lender (25M, 100M: design set; 400M: held out)", single, "size", args.cases)
    if not args.quick:
        family = [run_case(c) for c in multipower_family_cases(DESIGN_SIZES + HELD_OUT_SIZES)]
        report("5. MultiPower, the whole size known (family protocol)", family, "size", args.cases)
        for target, lenders in (("100M", ("25M",)), ("400M", ("100M",)), ("400M", ("25M", "100M"))):
            cross = [run_case(c) for c in multipower_cross_size_cases(target, lenders)]
            title = f"5b. MultiPower {target}, annealing borrowed from {' and '.join(lenders)} only"
            report(title, cross, "size", args.cases)
    olmo = olmo_cases()
    for law in ("annealing",) if args.quick else ("annealing", "multipower", "auto"):
        report(
            f"6. OLMo ladder from 50%, rest of the ladder known, law={law}",
            [run_case(c, law=law) for c in olmo],
            "size",
            args.cases,
        )
    cooldowns()
    cost(compare_binning=not args.quick)


if __name__ == "__main__":
    main()
