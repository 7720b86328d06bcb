"""Public fitting entry points: point fit, chunked cluster bootstrap, assembly into a FitResult."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fits.laws.backtest import run_backtest
from fits.laws.base import PointFit
from fits.laws.fitting import check_request
from fits.laws.observations import FitFailed, FloatArray, Observations
from fits.laws.registry import get_law
from fits.laws.screening import fit_screened

DEFAULT_BOOTSTRAP = 200


@dataclass(frozen=True)
class FitResult:
    """A finished fit: parameters named as in docs/laws.md, 95% bootstrap intervals, every draw, diagnostics."""

    law: str
    objective: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fixed: dict[str, float]
    metrics: dict[str, float]
    backtest: dict[str, Any]
    warnings: list[str]
    draws: FloatArray
    draw_names: list[str]
    data_range: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # Runs the screening rule left out: {"index" (row of the Observations fitted), "n_params", "n_tokens",
    # "final_loss", "residual", "robust_z", "reason"}; empty for fits stored before the rule existed.
    screened: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_params(self) -> dict[str, float]:
        """Fitted and fixed parameters together: what predict_loss needs."""
        return {**self.fixed, **self.params}

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (draws as nested lists; NaN draws, from failed refits, become None)."""
        draws = [[None if not np.isfinite(v) else float(v) for v in row] for row in self.draws]
        return {
            "law": self.law,
            "objective": self.objective,
            "params": dict(self.params),
            "intervals": {k: [v[0], v[1]] for k, v in self.intervals.items()},
            "fixed": dict(self.fixed),
            "metrics": dict(self.metrics),
            "backtest": dict(self.backtest),
            "warnings": list(self.warnings),
            "draws": draws,
            "draw_names": list(self.draw_names),
            "data_range": dict(self.data_range),
            "settings": dict(self.settings),
            "screened": [dict(s) for s in self.screened],
        }


def fit_point(
    law: str,
    data: Observations,
    *,
    objective: str = "huber",
    seed: int = 0,
    tie_exponents: bool = False,
    screen_outliers: bool = True,
) -> PointFit:
    """Point estimate (multi-start screening + L-BFGS-B), identifiability and domain decisions, metrics, backtest.

    With `screen_outliers` (the default) runs the law cannot describe are left out first and listed in
    `screened` (fits.laws.screening); the backtest (fits.laws.backtest) applies the same procedure.
    Raises FitFailed with a readable reason on degenerate data; ValueError on an unknown law or objective.
    """
    if seed < 0:
        raise ValueError("seed must be non-negative")
    model = get_law(law)
    check_request(data, objective)
    point, _ = fit_screened(
        model, data, objective=objective, seed=seed, tie_exponents=tie_exponents, screen_outliers=screen_outliers
    )
    backtest, notes = run_backtest(
        model, data, point, objective=objective, seed=seed, tie_exponents=tie_exponents, screen_outliers=screen_outliers
    )
    metrics = {**point.metrics, "n_screened": float(len(point.screened))}
    return replace(point, backtest=backtest, metrics=metrics, warnings=[*point.warnings, *notes])


def _draw_weights(point: PointFit, index: int) -> tuple[FloatArray, FloatArray]:
    """Case weights of bootstrap draw `index`: configurations resampled with replacement, seeded by (seed, index)."""
    n_groups = int(point.groups.max()) + 1
    rng = np.random.default_rng([point.seed, 20240411, index])
    counts = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups).astype(np.float64)
    run_w = counts[point.groups]
    eval_w = run_w[point.data.eval_run] if point.data.n_evals else np.zeros(0)
    return run_w, eval_w


def bootstrap_chunk(point: PointFit, *, start: int, count: int) -> FloatArray:
    """Bootstrap draws start .. start+count-1, shape (count, len(point.draw_names)).

    Each draw depends only on (point, seed, draw index), so any chunking gives identical draws. A draw whose
    refit produces non-finite parameters is a row of NaN (counted in the assembled fit's warnings).
    """
    if start < 0 or count < 0:
        raise ValueError("start and count must be non-negative")
    law = get_law(point.law)
    out = np.full((count, len(point.draw_names)), np.nan)
    for i in range(count):
        run_w, eval_w = _draw_weights(point, start + i)
        with np.errstate(all="ignore"):
            row = law.refit(point, run_w, eval_w)
        if np.all(np.isfinite(row)):
            out[i] = row
    return out


def assemble_fit(point: PointFit, draws: FloatArray, *, level: float = 0.95) -> FitResult:
    """Intervals (bootstrap percentiles) and draw diagnostics on top of the point fit."""
    draws = np.asarray(draws, dtype=np.float64).reshape(-1, len(point.draw_names))
    warnings = list(point.warnings)
    ok = np.all(np.isfinite(draws), axis=1)
    n_bad = int(np.sum(~ok))
    if n_bad:
        warnings.append(f"{n_bad} of {draws.shape[0]} bootstrap refits failed and are stored as NaN")
    intervals: dict[str, tuple[float, float]] = {}
    if int(np.sum(ok)) >= 2:
        tail = 100.0 * (1.0 - level) / 2.0
        lo = np.percentile(draws[ok], tail, axis=0)
        hi = np.percentile(draws[ok], 100.0 - tail, axis=0)
        intervals = {name: (float(a), float(b)) for name, a, b in zip(point.draw_names, lo, hi, strict=True)}
    else:
        warnings.append("no bootstrap intervals: fewer than two successful draws")
    metrics = {**point.metrics, "n_draws": float(draws.shape[0])}
    return FitResult(
        law=point.law,
        objective=point.objective,
        params=dict(point.params),
        intervals=intervals,
        fixed=dict(point.fixed),
        metrics=metrics,
        backtest=dict(point.backtest),
        warnings=warnings,
        draws=draws,
        draw_names=list(point.draw_names),
        data_range=dict(point.data_range),
        settings={**point.settings, "n_bootstrap": draws.shape[0], "level": level},
        screened=[dict(s) for s in point.screened],
    )


def fit_law(
    law: str,
    data: Observations,
    *,
    objective: str = "huber",
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    tie_exponents: bool = False,
    screen_outliers: bool = True,
) -> FitResult:
    """Fit `law` ("chinchilla" or "precision") to `data`: point estimate, n_bootstrap cluster-bootstrap draws,
    backtest (fits.laws.backtest); runs the law cannot describe are screened out unless `screen_outliers` is
    false. Equal to assemble_fit(point, concatenated bootstrap_chunk outputs)."""
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be non-negative")
    point = fit_point(
        law, data, objective=objective, seed=seed, tie_exponents=tie_exponents, screen_outliers=screen_outliers
    )
    draws = bootstrap_chunk(point, start=0, count=n_bootstrap)
    return assemble_fit(point, draws)


__all__ = ["DEFAULT_BOOTSTRAP", "FitFailed", "FitResult", "assemble_fit", "bootstrap_chunk", "fit_law", "fit_point"]
