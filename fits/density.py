"""Capacity density of runs against a family's 16-bit reference (docs/laws.md section 11): pure NumPy, no Django.

The densing law [Xiao et al. 2024, arXiv:2412.04315] measures a model by the parameter count N_hat that a
reference model would need for the same result, and its density rho = N_hat / N. Bitscale's reference is the
family's own fitted law at 16 bits, trained on the run's own D, scored by the run's final loss (before PTQ):

    chinchilla:  L = E + A / N_hat^alpha + B / D^beta
    precision:   L = E + A / (N_hat * r16)^alpha + B / D^beta,   r16 = N_eff/N at 16/16/16 bits
    fp:          L = E + (A + D^beta / (gamma 8.5^delta 7.5^nu)) / N_hat^alpha + B / D^beta   (bf16, E8M7)

so, in closed form (no root find: the final loss has no PTQ term, and N enters only through N_eff):

    N_hat = (A' / (L - E - B / D^beta))^(1/alpha) / r16        (r16 = 1 for chinchilla and fp; A' = A, or
                                                               for fp A + D^beta / (gamma 8.5^delta 7.5^nu))

N_hat is undefined (NaN) where L - E - B/D^beta <= 0: the run reaches the law's asymptote for its D or goes
below it, so no finite 16-bit model explains it. Dividing by r16 (about 0.99 with Kumar's offsets) makes a run
on the fitted 16-bit curve exactly dense 1; a low-precision run on the curve is then N_eff(bits)/N_eff(16),
Kumar's discount for precision. Density counts parameters, not bits (docs/laws.md section 11.4).

The trend: ln(rho) = A*t + B fitted by least squares over time t in days; doubling time ln 2 / A (eq. 5).
t is when each run was trained (Run.trained_at), never when it was registered: a sweep imported in one batch
was trained over months. The trend is fitted only from MIN_TREND_POINTS runs with a defined density whose
training dates span at least MIN_TREND_SPAN_DAYS days: the densing law's doubling time is about 100 days
(3.3 months), so over a shorter span the slope measures the scatter of one sweep, not progress. Otherwise
`reason` says why there is none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from fits.laws import get_law
from runs.density import DensityConstants
from runs.density import capacity_density as density_of
from runs.density import effective_params_16bit as n_hat_of

FloatArray = npt.NDArray[np.float64]
MIN_TREND_POINTS = 3
MIN_TREND_SPAN_DAYS = 30.0  # between the first and the last training date of the points fitted


def effective_params_16bit(
    params: Mapping[str, Any],
    *,
    law: str,
    n_tokens: npt.ArrayLike,
    final_loss: npt.ArrayLike,
) -> FloatArray:
    """N_hat: the N a 16-bit model of the fitted law trained on the same D needs for the same final loss.

    `params` are the fit's parameters, fitted and held fixed together; the law turns them into its 16-bit
    reference (ScalingLaw.density_constants) and runs.density does the arithmetic. Broadcasts over n_tokens and
    final_loss; NaN where undefined (L - E - B/D^beta <= 0, a non-finite input, or a 16-bit reference outside
    the law's domain).
    """
    constants: DensityConstants = get_law(law).density_constants(params)
    return n_hat_of(constants, n_tokens=n_tokens, final_loss=final_loss)


def capacity_density(
    params: Mapping[str, Any],
    *,
    law: str,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    final_loss: npt.ArrayLike,
) -> FloatArray:
    """rho = N_hat / N per run (eq. 1 of the densing law); NaN where N_hat is undefined or N is not positive."""
    constants: DensityConstants = get_law(law).density_constants(params)
    return density_of(constants, n_params=n_params, n_tokens=n_tokens, final_loss=final_loss)


class DensityTrend(NamedTuple):
    """ln(rho) = slope * t + intercept over t in days; doubling_days = ln 2 / slope (None unless slope > 0)."""

    doubling_days: float | None
    slope: float  # per day; NaN with fewer than MIN_TREND_POINTS usable points or under MIN_TREND_SPAN_DAYS
    r2: float  # of the fit in log space; NaN where undefined
    intercept: float
    n_points: int
    span_days: float = math.nan  # between the first and the last usable point; NaN without points
    reason: str | None = None  # why there is no trend (slope NaN); None when there is one


def density_trend(times_days: npt.ArrayLike, densities: npt.ArrayLike) -> DensityTrend:
    """Least-squares fit of ln(density) against time; points with a non-finite or non-positive density are dropped."""
    t = np.asarray(times_days, dtype=np.float64).ravel()
    rho = np.asarray(densities, dtype=np.float64).ravel()
    if t.shape != rho.shape:
        raise ValueError(f"times_days and densities differ in length ({t.size} vs {rho.size})")
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.isfinite(t) & np.isfinite(rho) & (rho > 0)
    t, y = t[keep], np.log(rho[keep])
    n = int(t.size)
    span = float(np.ptp(t)) if n else math.nan
    if n < MIN_TREND_POINTS:
        reason = f"needs at least {MIN_TREND_POINTS} runs with a defined density; {n} usable"
        return DensityTrend(None, math.nan, math.nan, math.nan, n, span, reason)
    if not span >= MIN_TREND_SPAN_DAYS:
        reason = (
            f"the training dates span {span:.3g} days; a trend needs at least {MIN_TREND_SPAN_DAYS:g} days "
            "between the first and the last"
        )
        return DensityTrend(None, math.nan, math.nan, math.nan, n, span, reason)
    slope, intercept = (float(v) for v in np.polyfit(t, y, 1))
    residual = float(np.sum((y - (slope * t + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else math.nan)
    doubling = math.log(2.0) / slope if slope > 0 else None
    return DensityTrend(doubling, slope, r2, intercept, n, span)


def density_doubling_time(times_days: npt.ArrayLike, densities: npt.ArrayLike) -> tuple[float | None, float, float]:
    """(doubling time in days, slope A per day, R^2) of ln(density) = A t + B; doubling None when A <= 0 or
    there is no trend (fewer than 3 usable points, or under MIN_TREND_SPAN_DAYS: slope and R^2 then NaN)."""
    trend = density_trend(times_days, densities)
    return trend.doubling_days, trend.slope, trend.r2
