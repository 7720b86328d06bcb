"""A curve law fitted to a whole family's training curves, as the workers store it (docs/curves.md, "Stored curve
fits"). Pure NumPy/SciPy: the Django side gathers each run's loss and ``lr`` histories into FamilyRuns and stores
what this returns.

One fit per (family, law): L0, A and alpha per model size, the annealing parameters shared by every run and size
(fits.laws.curves.fit_curves). Its held-out score is the engine's own protocol: each finished, decayed run of the
family (at most MAX_HELDOUT_RUNS) is forecast from the first HELDOUT_FRACTION of its steps with the rest of the
family known (fits.laws.forecast.forecast_loss), and scored against its last logged loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from fits.laws.curves import (
    ANNEALING_LAMBDA,
    CURVE_LAWS,
    MAX_POINTS_PER_RUN,
    CurveFit,
    curve_law,
    fit_curves,
)
from fits.laws.forecast import MAX_BACKTEST_RUNS, MIN_TARGET_POINTS, FamilyRun, forecast_loss
from fits.laws.observations import FitFailed
from fits.laws.schedules import DECAYED_FRACTION

# Runs in one family fit: the decayed runs first, then the longest-seen; bounds the work of a refit.
MAX_FAMILY_RUNS = 16
HELDOUT_FRACTION = 0.5  # a held-out run is forecast from this fraction of its steps
MAX_HELDOUT_RUNS = MAX_BACKTEST_RUNS
INTERVAL_LEVEL = 0.95


@dataclass(frozen=True)
class FamilyCurveResult:
    """A family's fitted curve law, JSON-able: ``params`` (per size and shared), their ``intervals`` (central
    INTERVAL_LEVEL, delta method on the fit's covariance), ``metrics`` (the whole fit's), ``run_metrics`` (per run:
    points, bins, RMSE and MAE of the fitted law on its history), ``heldout`` (the held-out forecasts' errors and
    their summary), ``warnings`` and ``left_out`` (runs the fit could not use, with the reason)."""

    law: str
    params: dict[str, Any]
    intervals: dict[str, Any]
    metrics: dict[str, float]
    run_metrics: dict[str, dict[str, Any]]
    heldout: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)


def curve_laws() -> tuple[str, ...]:
    """The curve laws a family is fitted with (every law of fits.laws.curves)."""
    return CURVE_LAWS


def _usable(runs: Sequence[FamilyRun]) -> tuple[list[FamilyRun], dict[str, str]]:
    """The runs with enough points after warmup, and the reason for each left out."""
    kept: list[FamilyRun] = []
    left_out: dict[str, str] = {}
    for run in runs:
        n = int(run.curve().steps.shape[0])
        if n < MIN_TARGET_POINTS:
            left_out[run.run] = f"{n} logged loss(es) after warmup; a curve fit needs at least {MIN_TARGET_POINTS}"
        else:
            kept.append(run)
    return kept, left_out


def family_curve_refusal(runs: Sequence[FamilyRun]) -> str | None:
    """Why the family's curves cannot be fitted yet, before any fitting (None when they can): no run with both
    histories, too few points in every run, or no run whose learning rate has decayed (the annealing terms would
    not be identified: a law that cannot tell how much a decay removes is not stored as a success)."""
    if not runs:
        return "no run of the family has both a loss history and an lr history"
    usable, _ = _usable(runs)
    if not usable:
        return (
            f"fewer than {MIN_TARGET_POINTS} logged losses after warmup in every run of the family "
            f"({len(runs)} run(s) with a loss and an lr history)"
        )
    if not any(r.has_decayed() for r in usable):
        return (
            "no run of the family has a decayed learning rate yet (to "
            f"{DECAYED_FRACTION:.0%} of its peak or below): the annealing terms are not identified"
        )
    return None


def fit_family_curves(
    runs: Sequence[FamilyRun],
    *,
    law: str,
    max_runs: int = MAX_FAMILY_RUNS,
    heldout_fraction: float = HELDOUT_FRACTION,
    max_heldout: int = MAX_HELDOUT_RUNS,
    max_points: int = MAX_POINTS_PER_RUN,
) -> FamilyCurveResult:
    """Fit `law` to the family's runs (each history binned to at most `max_points` points after warmup).

    Raises FitFailed, with the reason, when no run has enough points, or when no run's learning rate has decayed
    (the annealing terms would not be identified: a law that cannot tell how much a decay removes is not stored as
    a success).
    """
    the_law = curve_law(law)
    refusal = family_curve_refusal(runs)
    if refusal is not None:
        raise FitFailed(refusal)
    usable, left_out = _usable(runs)
    ordered = sorted(usable, key=lambda r: (not r.has_decayed(), -r.last_step, r.run))
    chosen = ordered[:max_runs]
    for run in ordered[max_runs:]:
        left_out[run.run] = f"more than {max_runs} runs: the decayed and longest-seen runs are fitted"
    curves = [r.curve(max_points) for r in chosen]
    fit = fit_curves(curves, law=law, max_points=max_points)
    result_warnings = list(fit.warnings)
    if left_out:
        result_warnings.append(f"{len(left_out)} run(s) left out (see left_out)")
    return FamilyCurveResult(
        law=law,
        params={
            "groups": {g: dict(p) for g, p in fit.groups.items()},
            "shared": dict(fit.shared),
            "lr_scale": dict(fit.lr_scale),
            "lam": fit.lam if the_law.momentum else None,
        },
        intervals=_intervals(fit),
        metrics={**fit.metrics, "n_decayed_runs": float(sum(r.has_decayed() for r in chosen))},
        run_metrics=_run_metrics(fit, chosen, curves),
        heldout=_heldout(chosen, usable, law=law, fraction=heldout_fraction, limit=max_heldout, max_points=max_points),
        warnings=result_warnings,
        left_out=left_out,
    )


def _intervals(fit: CurveFit, level: float = INTERVAL_LEVEL) -> dict[str, Any]:
    """Central `level` intervals of every fitted parameter, normal in the optimiser's coordinates (log A, log B, log
    C are exponentiated back); parameters held fixed have none."""
    z = float(norm.ppf(0.5 + level / 2.0))
    groups: dict[str, dict[str, list[float]]] = {}
    shared: dict[str, list[float]] = {}
    for j, name in enumerate(fit.theta_names):
        sd = math.sqrt(max(float(fit.covariance[j, j]), 0.0))
        if sd == 0.0 or not math.isfinite(sd):
            continue
        value = float(fit.theta[j])
        lo, hi = value - z * sd, value + z * sd
        base, _, group = name.partition("[")
        if base.startswith("log"):
            base, lo, hi = base[3:], math.exp(min(lo, 700.0)), math.exp(min(hi, 700.0))
        if group:
            groups.setdefault(group.rstrip("]"), {})[base] = [lo, hi]
        else:
            shared[base] = [lo, hi]
    return {"level": level, "groups": groups, "shared": shared}


def _run_metrics(fit: CurveFit, runs: Sequence[FamilyRun], curves: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per run: raw points, bins, the fitted law's RMSE and MAE on its binned history (weighted by bin counts)."""
    out: dict[str, dict[str, Any]] = {}
    for run, curve in zip(runs, curves, strict=True):
        pred = fit.predict(run.schedule, curve.steps, run.group)
        resid = pred - curve.loss
        w = curve.weights if curve.weights is not None else np.ones_like(resid)
        total = float(w.sum()) or 1.0
        out[run.run] = {
            "group": run.group,
            "n_points": int(np.isfinite(run.loss).sum()),
            "n_bins": int(curve.steps.shape[0]),
            "last_step": run.last_step,
            "decayed": run.has_decayed(),
            "rmse": float(np.sqrt(np.sum(w * resid**2) / total)),
            "mae": float(np.sum(w * np.abs(resid)) / total),
        }
    return out


def _heldout(
    chosen: Sequence[FamilyRun],
    family: Sequence[FamilyRun],
    *,
    law: str,
    fraction: float,
    limit: int,
    max_points: int,
) -> dict[str, Any]:
    """Forecast each finished, decayed run (longest first, at most `limit`) from its first `fraction` of steps,
    the rest of the family known (runs sharing its history left out, as the lending rule does)."""
    targets = [r for r in chosen if r.finished and r.has_decayed()][:limit]
    errors: dict[str, float] = {}
    covered: list[bool] = []
    skipped: dict[str, str] = {}
    for run in targets:
        others = [r for r in family if r.run != run.run and not (run.lineage and r.lineage == run.lineage)]
        seen = run.cut(fraction * run.schedule.total_steps)
        actual = float(run.loss[np.isfinite(run.loss)][-1])
        fc = forecast_loss(seen, others, at_step=run.last_step, law=law, backtest=False, max_points=max_points)
        if not fc.ok or fc.loss is None or fc.interval is None:
            skipped[run.run] = fc.reason
            continue
        errors[run.run] = fc.loss - actual
        covered.append(fc.interval[0] <= actual <= fc.interval[1])
    values = np.array(list(errors.values()))
    return {
        "scheme": f"each finished, decayed run forecast from its first {fraction:.0%} of steps, the family known",
        "fraction": fraction,
        "errors": errors,
        "skipped": skipped,
        "n": len(errors),
        "mae": float(np.mean(np.abs(values))) if values.shape[0] else None,
        "rmse": float(np.sqrt(np.mean(values**2))) if values.shape[0] else None,
        "bias": float(np.mean(values)) if values.shape[0] else None,
        "coverage": float(np.mean(covered)) if covered else None,
        "level": INTERVAL_LEVEL,
    }


def stored_curve_loss(law: str, params: dict[str, Any], run: FamilyRun, steps: np.ndarray) -> np.ndarray | None:
    """The stored fit's law (FamilyCurveResult.params) at `steps` of `run`; None when the fit has no parameters
    for the run's size."""
    own = (params.get("groups") or {}).get(run.group)
    scale = (params.get("lr_scale") or {}).get(run.group)
    if own is None or scale is None:
        return None
    values = {**own, **(params.get("shared") or {})}
    lam = float(params.get("lam") or ANNEALING_LAMBDA)
    return curve_law(law).loss(values, run.schedule, steps, lr_scale=scale, lam=lam)


__all__ = [
    "HELDOUT_FRACTION",
    "MAX_FAMILY_RUNS",
    "MAX_HELDOUT_RUNS",
    "FamilyCurveResult",
    "curve_laws",
    "family_curve_refusal",
    "fit_family_curves",
    "stored_curve_loss",
]
