"""Runs the law cannot describe: a robust residual screen that keeps them from steering a fit.

Rule (docs/laws-engine.md, "Runs the law cannot describe"):
1. Pilot: fit the law with the robust objective (Huber, delta = 1e-3) on every run.
2. Residuals r_i = log L_hat_i - log L_i of every run's final loss under the pilot; robust scale
   s = 1.4826 * MAD (median absolute deviation from the median, over the runs the pilot fitted), which equals
   the standard deviation for normal noise and ignores the runs being judged.
3. Screen the runs with |r_i - median| > SCREEN_K * s; never more than SCREEN_MAX_FRACTION of the runs (the most
   extreme first), so a rule meant for a few wild runs cannot discard a large part of a family.
4. Refit the pilot without them and judge every run again against the refit (a run screened against the first
   pilot may come back); at most SCREEN_ROUNDS refits.
5. The final fit uses the requested objective on the runs kept.

A screen that would leave data the law cannot be fitted to (too few runs, sizes or token counts) is not applied:
the previous round's runs are kept and a warning says why. Runs with no prediction (outside the law's domain,
or without a floating-point format for the fp law) are never screened; the law skips them itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from planner.laws.fitting import Law, PointFit
from planner.laws.observations import FitFailed, FloatArray, Observations

# k robust standard deviations: normal noise exceeds 5 sigma once in 1.7 million runs, so clean data keeps every
# run, while runs 5 sigma off are far outside anything the noise explains. Chosen on the real sweeps
# (docs/laws-engine.md): 3 and 4 also screened runs of OLMo's and Epoch's clean-looking data.
SCREEN_K = 5.0
SCREEN_MAX_FRACTION = 0.1
SCREEN_ROUNDS = 2
PILOT_OBJECTIVE = "huber"
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of normal noise times this is its standard deviation


@dataclass(frozen=True)
class ScreenSettings:
    """The rule's constants; recorded in a fit's settings so a stored fit says how it was screened."""

    k: float = SCREEN_K
    max_fraction: float = SCREEN_MAX_FRACTION
    max_rounds: int = SCREEN_ROUNDS
    pilot_objective: str = PILOT_OBJECTIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": "mad",
            "k": self.k,
            "max_fraction": self.max_fraction,
            "max_rounds": self.max_rounds,
            "pilot_objective": self.pilot_objective,
        }


@dataclass(frozen=True)
class Screening:
    """Which runs of the input a screen left out (`keep` false), with each one's residual and robust z."""

    keep: npt.NDArray[np.bool_]
    residual: FloatArray  # log L_hat - log L under the last pilot, NaN where the law has no prediction
    robust_z: FloatArray  # |residual - median| / s
    scale: float
    warnings: list[str] = field(default_factory=list)

    def screened(self, data: Observations) -> list[dict[str, Any]]:
        """The screened runs as JSON-ready records; `index` is the run's row in the Observations given to the fit."""
        out = []
        for i in np.flatnonzero(~self.keep):
            out.append(
                {
                    "index": int(i),
                    "n_params": float(data.n_params[i]),
                    "n_tokens": float(data.n_tokens[i]),
                    "final_loss": float(data.final_loss[i]),
                    "residual": float(self.residual[i]),
                    "robust_z": float(self.robust_z[i]),
                    "reason": (
                        f"final loss {_pct(self.residual[i])} the law fitted to the other runs: "
                        f"{self.robust_z[i]:.1f} robust standard deviations (limit {SCREEN_K:g})"
                    ),
                }
            )
        return out


def _pct(residual: float) -> str:
    # residual = log L_hat - log L: negative means the run's loss is above the law.
    above = math.expm1(-residual)
    return f"{abs(above) * 100:.1f}% {'above' if above > 0 else 'below'}"


def run_residuals(law: Law, params: dict[str, float], data: Observations) -> FloatArray:
    """log L_hat - log L of every run's final loss; NaN where the law gives no prediction."""
    with np.errstate(all="ignore"):
        pred = law.predict(
            params,
            n_params=data.n_params,
            n_tokens=data.n_tokens,
            weight_bits=data.weight_bits,
            activation_bits=data.activation_bits,
            kv_bits=data.kv_bits,
            exponent_bits=data.exponent_bits,
            mantissa_bits=data.mantissa_bits,
        )
        r = np.log(np.asarray(pred, dtype=np.float64)) - np.log(data.final_loss)
    return np.where(np.isfinite(r), r, np.nan)


def _flag(residual: FloatArray, basis: npt.NDArray[np.bool_], settings: ScreenSettings) -> tuple[FloatArray, float]:
    """Robust z of every run, from the median and MAD of the `basis` runs; inf scale guards give z = 0."""
    finite = np.isfinite(residual)
    ref = residual[basis & finite]
    if ref.shape[0] < 3:
        return np.zeros_like(residual), float("nan")
    med = float(np.median(ref))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(ref - med)))
    if not scale > 0:
        return np.zeros_like(residual), scale
    z = np.where(finite, np.abs(residual - med) / scale, 0.0)
    return z, scale


def screen_fit(
    law: Law,
    data: Observations,
    *,
    seed: int,
    tie_exponents: bool,
    settings: ScreenSettings = ScreenSettings(),
) -> tuple[PointFit, Screening]:
    """The rule's pilot fits (module docstring): the last pilot (fitted on the kept runs) and the screening.

    Raises FitFailed only when the pilot on every run fails (the data cannot be fitted at all).
    """
    n = data.n_runs
    cap = int(math.floor(settings.max_fraction * n))
    pilot = law.fit_point(
        data, objective=settings.pilot_objective, seed=seed, tie_exponents=tie_exponents, backtest=False
    )
    keep = np.ones(n, dtype=bool)
    warnings: list[str] = []
    residual = run_residuals(law, pilot.params | pilot.fixed, data)
    z, scale = _flag(residual, keep, settings)
    for _ in range(settings.max_rounds):
        flagged = z > settings.k
        if int(flagged.sum()) > cap:
            # Keep only the `cap` most extreme runs (ties broken by row, so the choice is reproducible).
            order = np.lexsort((np.arange(n), -z))
            flagged = np.zeros(n, dtype=bool)
            flagged[order[:cap]] = True
        if np.array_equal(~flagged, keep):
            break
        try:
            refit = law.fit_point(
                data.subset(~flagged),
                objective=settings.pilot_objective,
                seed=seed,
                tie_exponents=tie_exponents,
                backtest=False,
            )
        except FitFailed as exc:
            warnings.append(f"outlier screen of {int(flagged.sum())} runs not applied (the fit without them: {exc})")
            break
        pilot, keep = refit, ~flagged
        residual = run_residuals(law, pilot.params | pilot.fixed, data)
        z, scale = _flag(residual, keep, settings)
    return pilot, Screening(keep=keep, residual=residual, robust_z=z, scale=scale, warnings=warnings)


def fit_screened(
    law: Law,
    data: Observations,
    *,
    objective: str,
    seed: int,
    tie_exponents: bool,
    screen_outliers: bool,
    settings: ScreenSettings = ScreenSettings(),
) -> tuple[PointFit, Screening]:
    """The fit without its backtest: the screening rule (when `screen_outliers`), then the requested objective on
    the runs kept. The PointFit records the screened runs (`screened`), the rule in `settings["screening"]` and a
    warning naming how many runs were left out."""
    n = data.n_runs
    if not screen_outliers:
        point = law.fit_point(data, objective=objective, seed=seed, tie_exponents=tie_exponents, backtest=False)
        nan = np.full(n, np.nan)
        screening = Screening(keep=np.ones(n, dtype=bool), residual=nan, robust_z=nan, scale=float("nan"))
        return replace(point, settings={**point.settings, "screening": "off"}), screening
    pilot, screening = screen_fit(law, data, seed=seed, tie_exponents=tie_exponents, settings=settings)
    if objective == settings.pilot_objective:
        point = pilot
    else:
        point = law.fit_point(
            data.subset(screening.keep), objective=objective, seed=seed, tie_exponents=tie_exponents, backtest=False
        )
    screened = screening.screened(data)
    warnings = list(point.warnings) + screening.warnings
    if screened:
        warnings.append(
            f"{len(screened)} of {n} runs left out as runs the law cannot describe (final loss more than "
            f"{settings.k:g} robust standard deviations off the law fitted to the rest; listed in screened)"
        )
    return (
        replace(
            point,
            warnings=warnings,
            screened=screened,
            settings={**point.settings, "screening": settings.as_dict()},
        ),
        screening,
    )


__all__ = [
    "MAD_TO_SIGMA",
    "PILOT_OBJECTIVE",
    "SCREEN_K",
    "SCREEN_MAX_FRACTION",
    "SCREEN_ROUNDS",
    "ScreenSettings",
    "fit_screened",
    "Screening",
    "run_residuals",
    "screen_fit",
]
