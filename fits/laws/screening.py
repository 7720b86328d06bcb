"""Runs the law cannot describe: a robust residual screen that keeps them from steering a fit.

Rule (docs/laws-engine.md, "Runs the law cannot describe"). Residuals are r_i = log L_hat_i - log L_i of each
run's final loss. The robust scale s of the residuals of the runs a fit was fitted to: the standard deviation of
those within 3 MAD-scales (1.4826 * median absolute deviation) of the median, corrected for that truncation and
for the fit's p parameters (times sqrt(n / (n - p))): it equals the noise's standard deviation for normal noise
and is not moved by a few wild runs. A run's robust z is (r_i - median) / s.
Every pilot fit uses the robust objective (Huber, delta = 1e-3).
(a) Smallest sizes: with at least SIZE_CHECK_MIN_SIZES model sizes, fit the pilot without the smallest size and
    judge that size's runs against it; when their median z is beyond SIZE_SHIFT_K the whole size is screened and
    the next size is judged the same way (at most SCREEN_ROUNDS sizes, while enough sizes remain). A whole size
    off the law is not visible in a fit that includes it: its runs sit at the edge of the design and bend the
    exponents toward themselves.
(b) Residuals: fit the pilot on the runs kept by (a) and judge them against it; screen those off the law, at
    most SCREEN_MAX_FRACTION of all runs (the most extreme first), so a rule meant for a few wild runs cannot
    discard a large part of a family. Refit without them and judge again (a run may come back); at most
    SCREEN_ROUNDS refits.
The final fit uses the requested objective on the runs kept.

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

from fits.laws.base import PointFit, RunConfig, ScalingLaw
from fits.laws.observations import FitFailed, FloatArray, Observations

# k robust standard deviations: normal noise exceeds 5 sigma once in 1.7 million runs, so clean data keeps every
# run, while runs 5 sigma off are far outside anything the noise explains. Chosen on the real sweeps
# (docs/laws-engine.md): 3 and 4 also screened runs of OLMo's and Epoch's clean-looking data.
SCREEN_K = 5.0
SCREEN_MAX_FRACTION = 0.1
SCREEN_ROUNDS = 2
PILOT_OBJECTIVE = "huber"
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of normal noise times this is its standard deviation
# The smallest-size check judges a size against a fit of at least four larger sizes: with three, the fit is too
# close to its data for its residual scale to judge runs outside it (clean runs came out 5-10 scales off).
SIZE_CHECK_MIN_SIZES = 5
# A size is screened as a whole when its median z against the larger sizes' fit is beyond SIZE_SHIFT_K: clean
# sizes extrapolated down from four larger ones came out up to 6 scales off (synthetic, 20 seeds) and at most 2 on
# the real sweeps, since the scale of a fit's own residuals leaves out its extrapolation error; the wild sizes
# tried (5-30% off) came out 20-100 scales off.
SIZE_SHIFT_K = 10.0
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ScreenSettings:
    """The rule's constants; recorded in a fit's settings so a stored fit says how it was screened."""

    k: float = SCREEN_K
    size_k: float = SIZE_SHIFT_K
    max_fraction: float = SCREEN_MAX_FRACTION
    max_rounds: int = SCREEN_ROUNDS
    pilot_objective: str = PILOT_OBJECTIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": "mad",
            "k": self.k,
            "size_k": self.size_k,
            "max_fraction": self.max_fraction,
            "max_rounds": self.max_rounds,
            "pilot_objective": self.pilot_objective,
            "size_check_min_sizes": SIZE_CHECK_MIN_SIZES,
        }


DEFAULT_SETTINGS = ScreenSettings()


@dataclass(frozen=True)
class Screening:
    """Which runs of the input a screen left out (`keep` false), with each one's residual, robust z and check."""

    keep: npt.NDArray[np.bool_]
    residual: FloatArray  # log L_hat - log L under the fit that judged the run, NaN without a prediction
    robust_z: FloatArray  # (residual - median) / s, s the robust scale of the runs that fit was fitted to
    check: list[str]  # per run: "smallest_size", "residual", or "" for a run kept
    k: float = SCREEN_K
    size_k: float = SIZE_SHIFT_K
    warnings: list[str] = field(default_factory=list)

    def screened(self, data: Observations) -> list[dict[str, Any]]:
        """The screened runs as JSON-ready records; `index` is the run's row in the Observations given to the fit."""
        out = []
        for i in np.flatnonzero(~self.keep):
            if self.check[i] == "smallest_size":
                reason = (
                    f"the smallest model size lies off the law (its runs' median beyond {self.size_k:g} robust "
                    f"standard deviations): final loss {_pct(self.residual[i])} the law fitted to the larger "
                    f"models, {abs(self.robust_z[i]):.1f} robust standard deviations"
                )
            else:
                reason = (
                    f"final loss {_pct(self.residual[i])} the law fitted to the other runs: "
                    f"{abs(self.robust_z[i]):.1f} robust standard deviations (limit {self.k:g})"
                )
            out.append(
                {
                    "index": int(i),
                    "n_params": float(data.n_params[i]),
                    "n_tokens": float(data.n_tokens[i]),
                    "final_loss": float(data.final_loss[i]),
                    "residual": float(self.residual[i]),
                    "robust_z": float(self.robust_z[i]),
                    "check": self.check[i],
                    "reason": reason,
                }
            )
        return out


def _pct(residual: float) -> str:
    # residual = log L_hat - log L: negative means the run's loss is above the law.
    above = math.expm1(-residual)
    return f"{abs(above) * 100:.1f}% {'above' if above > 0 else 'below'}"


def run_residuals(law: ScalingLaw, params: dict[str, float], data: Observations) -> FloatArray:
    """log L_hat - log L of every run's final loss; NaN where the law gives no prediction."""
    with np.errstate(all="ignore"):
        pred = law.predict(params, RunConfig.of_runs(data))
        r = np.log(np.asarray(pred, dtype=np.float64)) - np.log(data.final_loss)
    return np.where(np.isfinite(r), r, np.nan)


def _robust_z(residual: FloatArray, basis: BoolArray, n_fitted: int) -> FloatArray:
    """Signed robust z of every run, (r - median) / s over the `basis` runs (module docstring). The factor
    sqrt(n / (n - p)): residuals of the runs a fit was fitted to understate the noise by about sqrt((n - p) / n)
    for p fitted parameters. 0 where undefined (no prediction, fewer than p + 3 basis runs, or a zero scale)."""
    finite = np.isfinite(residual)
    ref = residual[basis & finite]
    n = ref.shape[0]
    if n < n_fitted + 3:
        return np.zeros_like(residual)
    med = float(np.median(ref))
    mad_scale = MAD_TO_SIGMA * float(np.median(np.abs(ref - med)))
    if not mad_scale > 0:
        return np.zeros_like(residual)
    # One reweighting step: the standard deviation of the residuals within 3 MAD scales (divided by 0.9733, the
    # share of a normal variance within 3 sigma). The MAD alone is a noisy scale on a few dozen runs (about 21%
    # relative error at 30 runs), enough for clean runs to read 5 scales off; this estimate is nearly as
    # precise as the plain standard deviation and still ignores wild runs.
    inner = ref[np.abs(ref - med) <= 3.0 * mad_scale]
    scale = math.sqrt(float(np.mean((inner - med) ** 2)) / 0.9733) * math.sqrt(n / (n - n_fitted))
    if not scale > 0:
        return np.zeros_like(residual)
    return np.asarray(np.where(finite, (residual - med) / scale, 0.0), dtype=np.float64)


def screen_fit(
    law: ScalingLaw,
    data: Observations,
    *,
    seed: int,
    tie_exponents: bool,
    settings: ScreenSettings = DEFAULT_SETTINGS,
) -> tuple[PointFit, Screening]:
    """The rule's pilot fits (module docstring): the last pilot (fitted on the kept runs) and the screening.

    Raises FitFailed only when the pilot on every run fails (the data cannot be fitted at all).
    """
    n = data.n_runs
    cap = int(math.floor(settings.max_fraction * n))
    warnings: list[str] = []
    residual = np.full(n, np.nan)
    z = np.zeros(n)
    check = [""] * n

    def pilot_fit(mask: BoolArray) -> PointFit:
        sub = data.subset(mask)
        return law.fit_point(sub, objective=settings.pilot_objective, seed=seed, tie_exponents=tie_exponents)

    # (a) Smallest sizes, judged by the law fitted to the larger models: a whole size off the law bends a fit
    # that includes it (its runs sit at the edge of the design), so the residual screen alone would miss it.
    keep = np.ones(n, dtype=bool)
    pilot: PointFit | None = None  # the pilot fitted to exactly the runs in `keep`, once there is one
    for _ in range(settings.max_rounds):
        sizes = np.unique(data.n_params[keep])
        if sizes.shape[0] < SIZE_CHECK_MIN_SIZES:
            break
        small = keep & (data.n_params == sizes[0])
        try:
            rest = pilot_fit(keep & ~small)
        except FitFailed:
            break
        r = run_residuals(law, rest.params | rest.fixed, data)
        zr = _robust_z(r, keep & ~small, len(rest.params))
        # The size as a whole: its median z. A single wild run of a size the law describes is left to (b), and
        # the extrapolation error of a clean size (a few scales at most on the real sweeps) does not add up to
        # a shift of every run.
        shift = float(np.median(zr[small]))
        if not abs(shift) > settings.size_k:
            break
        keep &= ~small
        pilot = rest
        residual[small], z[small] = r[small], zr[small]
        for i in np.flatnonzero(small):
            check[i] = "smallest_size"

    # (b) Residual screen of the runs kept by (a), against the law fitted to the kept runs, iterated.
    candidates = keep.copy()
    if pilot is None:
        pilot = pilot_fit(keep)
    screened_b = np.zeros(n, dtype=bool)
    for round_ in range(settings.max_rounds + 1):
        r = run_residuals(law, pilot.params | pilot.fixed, data)
        zr = _robust_z(r, candidates & ~screened_b, len(pilot.params))
        flagged = candidates & (np.abs(zr) > settings.k)
        if int(flagged.sum()) > cap:
            # Keep only the `cap` most extreme runs (ties broken by row, so the choice is reproducible).
            order = np.lexsort((np.arange(n), -np.where(candidates, np.abs(zr), -np.inf)))
            flagged = np.zeros(n, dtype=bool)
            flagged[order[:cap]] = True
        residual[candidates], z[candidates] = r[candidates], zr[candidates]
        if np.array_equal(flagged, screened_b) or round_ == settings.max_rounds:
            break
        try:
            refit = pilot_fit(candidates & ~flagged)
        except FitFailed as exc:
            warnings.append(f"outlier screen of {int(flagged.sum())} runs not applied (the fit without them: {exc})")
            break
        pilot, screened_b = refit, flagged
    keep = candidates & ~screened_b
    for i in np.flatnonzero(screened_b):
        check[i] = "residual"
    return pilot, Screening(
        keep=keep,
        residual=residual,
        robust_z=z,
        check=check,
        k=settings.k,
        size_k=settings.size_k,
        warnings=warnings,
    )


def fit_screened(
    law: ScalingLaw,
    data: Observations,
    *,
    objective: str,
    seed: int,
    tie_exponents: bool,
    screen_outliers: bool,
    settings: ScreenSettings = DEFAULT_SETTINGS,
) -> tuple[PointFit, Screening]:
    """The fit without its backtest: the screening rule (when `screen_outliers`), then the requested objective on
    the runs kept. The PointFit records the screened runs (`screened`), the rule in `settings["screening"]` and a
    warning naming how many runs were left out."""
    n = data.n_runs
    if not screen_outliers:
        point = law.fit_point(data, objective=objective, seed=seed, tie_exponents=tie_exponents)
        nan = np.full(n, np.nan)
        screening = Screening(keep=np.ones(n, dtype=bool), residual=nan, robust_z=nan, check=[""] * n)
        return replace(point, settings={**point.settings, "screening": "off"}), screening
    pilot, screening = screen_fit(law, data, seed=seed, tie_exponents=tie_exponents, settings=settings)
    if objective == settings.pilot_objective:
        point = pilot
    else:
        point = law.fit_point(data.subset(screening.keep), objective=objective, seed=seed, tie_exponents=tie_exponents)
    screened = screening.screened(data)
    warnings = list(point.warnings) + screening.warnings
    if screened:
        warnings.append(
            f"{len(screened)} of {n} runs left out as runs the law cannot describe (far off the law fitted to "
            "the other runs; listed in screened, each with its reason)"
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
    "SIZE_CHECK_MIN_SIZES",
    "SIZE_SHIFT_K",
    "ScreenSettings",
    "fit_screened",
    "Screening",
    "run_residuals",
    "screen_fit",
]
