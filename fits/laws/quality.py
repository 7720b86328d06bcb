"""A verdict on every fit: good, weak or unusable, with the reasons a statistician would give.

Computed once, when a fit is published (fits.pipeline), from the fit's own numbers (docs/laws-engine.md, "A verdict
on every fit"). Each check reads one figure; a figure a fit does not carry (fits stored before it was recorded) is
not judged, and the reasons say so only when nothing could be judged.

Unusable (answers are refused):
- **No signal.** The law explains less than R2_UNUSABLE of the variance of log final loss that a constant leaves,
  adjusted for its fitted parameters (`metrics.r2_log_adjusted`): the runs do not show the dependence on N and D
  the law describes, and any plan would be read off noise.
- **No skill on held-out runs.** The backtest's error (`rmse_log_runs`) is no smaller than that of the no-signal
  prediction (the fitted runs' mean log loss, `rmse_log_constant`): what the law learned does not carry to runs
  it did not see.

Weak (answers carry warnings):
- the law explains less than R2_WEAK of that variance;
- the backtest error is more than BACKTEST_NOISE_WEAK times the scatter of the fitted runs about the law
  (`metrics.noise_log`): the law extrapolates much worse than it fits;
- a parameter ended on a bound of the law's box (ScalingLaw.parameters_on_bounds);
- a parameter is not identified by the data: its 95% interval is wider than +-MAX_RELATIVE_HALF_WIDTH of the
  estimate (or, for positive scales such as E and the gammas, spans more than MAX_LOG_RATIO, two orders of
  magnitude; for an offset whose natural value may be 0, n_x, wider than +-1 absolutely: a factor e on its term);
  amplitudes that trade off with an exponent (A, B: ScalingLaw.amplitude_params) are judged through it;
- the fit rests on fewer than MIN_SIZES model sizes or MIN_TOKEN_COUNTS token counts;
- there is no held-out check (backtest not computed) or no bootstrap interval;
- the screening rule left out more than MAX_SCREENED_SHARE of the runs (the law cannot describe them);
- the law ignores training precision while the runs vary it (ScalingLaw.bit_dims).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fits.laws.registry import get_law
from fits.laws.results import FitResult

GOOD, WEAK, UNUSABLE = "good", "weak", "unusable"
LEVELS = (GOOD, WEAK, UNUSABLE)

R2_UNUSABLE = 0.5
R2_WEAK = 0.9
BACKTEST_NOISE_WEAK = 3.0
MAX_RELATIVE_HALF_WIDTH = 1.0
MAX_LOG_RATIO = 100.0
MIN_SIZES = 4
MIN_TOKEN_COUNTS = 4
MAX_SCREENED_SHARE = 0.05


@dataclass(frozen=True)
class Quality:
    """A fit's verdict: `level` (good, weak, unusable) and the reasons behind anything short of good."""

    level: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unusable(self) -> bool:
        return self.level == UNUSABLE

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons)}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def assess_fit(
    *,
    law: str,
    params: Mapping[str, float],
    intervals: Mapping[str, Sequence[float]],
    metrics: Mapping[str, Any],
    backtest: Mapping[str, Any],
    warnings: Sequence[str],
    data_range: Mapping[str, float],
) -> Quality:
    """The verdict of a fit from its stored numbers (module docstring)."""
    unusable: list[str] = []
    weak: list[str] = []
    model = get_law(law)

    r2 = _number(metrics.get("r2_log_adjusted"))
    if r2 is not None:
        share = f"the law explains {max(r2, 0.0):.1%} of the variance of log loss that a constant loss leaves"
        if r2 < R2_UNUSABLE:
            unusable.append(
                f"no signal: {share} (adjusted for its {len(params)} parameters; below {R2_UNUSABLE:.0%}): the runs "
                "do not show the dependence the law describes"
            )
        elif r2 < R2_WEAK:
            weak.append(f"little signal: {share} (below {R2_WEAK:.0%})")

    score = _number(backtest.get("rmse_log_runs"))
    constant = _number(backtest.get("rmse_log_constant"))
    noise = _number(metrics.get("noise_log"))
    held = _number(backtest.get("n_held_out_runs"))
    on = f" on {int(held)} held-out runs" if held is not None else ""
    if score is not None and constant is not None and score >= constant:
        unusable.append(
            f"no skill: the backtest error{on} ({score:.4g} in log loss) is no smaller than that of a constant "
            f"prediction, the fitted runs' mean loss ({constant:.4g})"
        )
    elif score is not None and noise is not None and noise > 0 and score > BACKTEST_NOISE_WEAK * noise:
        weak.append(
            f"the backtest error{on} ({score:.4g} in log loss) is {score / noise:.1f}x the fitted runs' scatter "
            f"about the law ({noise:.4g}): the law extrapolates much worse than it fits"
        )
    if score is None:
        noted = next((w for w in warnings if w.startswith("backtest not computed")), None)
        weak.append(noted or "no held-out check: the fit has no backtest score")

    for text in model.parameters_on_bounds(params, data_range):
        weak.append(f"on a bound: {text}")

    if intervals:
        for name, value in params.items():
            if name in model.amplitude_params:
                continue  # judged through its exponent (ScalingLaw.amplitude_params)
            bounds = intervals.get(name)
            if bounds is None or len(bounds) != 2:
                continue
            lo, hi = _number(bounds[0]), _number(bounds[1])
            if lo is None or hi is None:
                continue
            if name in model.absolute_scale_params:
                scale = model.absolute_scale_params[name]
                if (hi - lo) / 2.0 > MAX_RELATIVE_HALF_WIDTH * scale:
                    weak.append(
                        f"not identified: {name}'s 95% interval [{lo:.3g}, {hi:.3g}] is +-{(hi - lo) / 2:.3g} wide "
                        f"(more than +-{MAX_RELATIVE_HALF_WIDTH * scale:g}, a factor e on its term)"
                    )
            elif name in model.log_scale_params and lo > 0 and value > 0:
                if hi / lo > MAX_LOG_RATIO:
                    weak.append(
                        f"not identified: {name}'s 95% interval [{lo:.3g}, {hi:.3g}] spans {math.log10(hi / lo):.1f} "
                        "orders of magnitude"
                    )
            elif value != 0 and (hi - lo) / (2.0 * abs(value)) > MAX_RELATIVE_HALF_WIDTH:
                half = (hi - lo) / (2.0 * abs(value))
                weak.append(
                    f"not identified: {name}'s 95% interval [{lo:.3g}, {hi:.3g}] is +-{half:.0%} of the estimate "
                    f"{value:.3g}"
                )
    elif _number(metrics.get("n_draws")) is not None:
        weak.append("no bootstrap intervals: the fit's uncertainty is unknown")

    sizes, tokens = _number(metrics.get("n_sizes")), _number(metrics.get("n_token_counts"))
    if sizes is not None and sizes < MIN_SIZES:
        weak.append(f"thin design: the fit rests on {int(sizes)} model sizes (fewer than {MIN_SIZES})")
    if tokens is not None and tokens < MIN_TOKEN_COUNTS:
        weak.append(f"thin design: the fit rests on {int(tokens)} token counts (fewer than {MIN_TOKEN_COUNTS})")

    screened, fitted = _number(metrics.get("n_screened")), _number(metrics.get("n_runs"))
    if screened and fitted is not None and screened > MAX_SCREENED_SHARE * (screened + fitted):
        weak.append(
            f"the law cannot describe {int(screened)} of the {int(screened + fitted)} runs: the screening rule left "
            f"them out (more than {MAX_SCREENED_SHARE:.0%})"
        )
    if not model.bit_dims:
        varied = [
            f"{key} {data_range[f'{key}_min']:g}-{data_range[f'{key}_max']:g}"
            for key in ("weight_bits", "activation_bits", "kv_bits")
            if data_range.get(f"{key}_min") is not None and data_range.get(f"{key}_min") != data_range.get(f"{key}_max")
        ]
        if varied:
            weak.append(f"the law ignores training precision, which the runs vary ({', '.join(varied)})")

    if unusable:
        return Quality(UNUSABLE, tuple(unusable + weak))
    if weak:
        return Quality(WEAK, tuple(weak))
    return Quality(GOOD)


def fit_quality(result: FitResult) -> Quality:
    """The verdict of an assembled fit (fits.laws.results.FitResult)."""
    return assess_fit(
        law=result.law,
        params=result.params,
        intervals=result.intervals,
        metrics=result.metrics,
        backtest=result.backtest,
        warnings=result.warnings,
        data_range=result.data_range,
    )


__all__ = [
    "BACKTEST_NOISE_WEAK",
    "GOOD",
    "LEVELS",
    "MAX_LOG_RATIO",
    "MAX_RELATIVE_HALF_WIDTH",
    "MAX_SCREENED_SHARE",
    "MIN_SIZES",
    "MIN_TOKEN_COUNTS",
    "Quality",
    "R2_UNUSABLE",
    "R2_WEAK",
    "UNUSABLE",
    "WEAK",
    "assess_fit",
    "fit_quality",
]
