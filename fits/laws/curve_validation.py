"""Held-out validation of the forecasts on the shipped real curves (docs/curves.md, "Measured"): the cases, and
the figures bench/curves.py prints and tests/fits/test_curves_real.py asserts.

A case forecasts one run from the first part of its steps; its later part never enters the fit. Runs that share
history with the target (MultiPower's branches of one constant-LR run, OLMo's 1xC replicates) never lend.
The design set is the MultiPower 25M and 100M curves: the law, the interval's model-error rule and the lending
threshold are chosen on them. The MultiPower 400M curves and the OLMo ladder are held out of every choice
(docs/curves.md section 7 tells which choice was made on which set).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fits.laws.curve_data import LoggedCurve, load_multipower_curves, load_olmo_ladder_curves
from fits.laws.curves import MAX_POINTS_PER_RUN
from fits.laws.forecast import DEFAULT_LAW, DEFAULT_LEVEL, FamilyRun, Forecast, forecast_loss

MULTIPOWER_TARGETS = ("cosine_24000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000")
DESIGN_SIZES = ("25M", "100M")
HELD_OUT_SIZES = ("400M",)


@dataclass(frozen=True)
class Case:
    """One held-out forecast: `target` seen up to `fraction` of its planned steps, with `family` known in full."""

    dataset: str
    size: str
    target: LoggedCurve
    family: tuple[LoggedCurve, ...]
    fraction: float

    @property
    def label(self) -> str:
        lent = "+".join(c.name for c in self.family) if len(self.family) <= 2 else f"{len(self.family)} runs"
        return f"{self.dataset} {self.target.name} from {self.fraction:.0%} <- {lent}"


@dataclass(frozen=True)
class Outcome:
    """A case's forecast against the run's true final loss."""

    case: Case
    forecast: Forecast
    actual: float
    seconds: float

    @property
    def error(self) -> float:
        return float("nan") if self.forecast.loss is None else self.forecast.loss - self.actual

    @property
    def baseline_error(self) -> float:
        return float("nan") if self.forecast.baseline_loss is None else self.forecast.baseline_loss - self.actual

    def covered(self, level: float | None = None) -> bool:
        """Whether the actual loss lies in the forecast's interval (rescaled to `level` if given)."""
        f = self.forecast
        if f.loss is None or f.sd is None:
            return False
        if level is None:
            assert f.interval is not None
            return f.interval[0] <= self.actual <= f.interval[1]
        from scipy.stats import norm

        return abs(self.actual - f.loss) <= float(norm.ppf(0.5 + level / 2.0)) * f.sd


def _lineage(curve: LoggedCurve) -> str:
    return curve.trunk or curve.name


def run_id(curve: LoggedCurve, name: str | None = None) -> str:
    """A run's id across sizes: MultiPower reuses schedule names at every size, so they are qualified
    ("400M/cosine_24000"); OLMo's names carry their size already."""
    name = curve.name if name is None else name
    return name if name.startswith(curve.group) else f"{curve.group}/{name}"


def family_run(curve: LoggedCurve, *, upto_step: float | None = None, lineage: str = "") -> FamilyRun:
    """A LoggedCurve as a forecast sees it (id from run_id), cut after `upto_step` when given."""
    keep = np.ones(curve.steps.shape[0], dtype=bool) if upto_step is None else curve.steps <= upto_step
    return FamilyRun(
        run=run_id(curve),
        group=curve.group,
        steps=curve.steps[keep],
        loss=curve.loss[keep],
        schedule=curve.schedule,
        lineage=lineage,
    )


def multipower_cases(sizes: Sequence[str], fractions: Sequence[float] = (0.25, 0.5)) -> list[Case]:
    """Every (target, one lender, fraction): targets the cosine and WSD runs, lenders every other run of the size
    whose learning rate decayed to half its peak or below and that shares no history with the target."""
    cases = []
    for size in sizes:
        curves = load_multipower_curves(size)
        for fraction in fractions:
            for name in MULTIPOWER_TARGETS:
                target = curves[name]
                for lender in curves.values():
                    if _lineage(lender) == _lineage(target) or not lender.schedule.has_decayed():
                        continue
                    cases.append(Case("multipower", size, target, (lender,), fraction))
    return cases


def multipower_family_cases(sizes: Sequence[str], fractions: Sequence[float] = (0.25, 0.5)) -> list[Case]:
    """Each cosine and WSD target with every run of its size that shares no history with it known in full."""
    cases = []
    for size in sizes:
        curves = load_multipower_curves(size)
        for fraction in fractions:
            for name in MULTIPOWER_TARGETS:
                target = curves[name]
                family = tuple(c for c in curves.values() if _lineage(c) != _lineage(target))
                cases.append(Case("multipower-family", size, target, family, fraction))
    return cases


def multipower_cross_size_cases(
    target_size: str, lender_sizes: Sequence[str], fractions: Sequence[float] = (0.25, 0.5)
) -> list[Case]:
    """Each cosine and WSD target of `target_size` with only other sizes' decayed runs known: the annealing terms
    are borrowed across sizes (the lending rule's last resort)."""
    lenders = tuple(
        c for size in lender_sizes for c in load_multipower_curves(size).values() if c.schedule.has_decayed()
    )
    curves = load_multipower_curves(target_size)
    return [
        Case("multipower-cross", target_size, curves[name], lenders, fraction)
        for fraction in fractions
        for name in MULTIPOWER_TARGETS
    ]


def olmo_cases(fraction: float = 0.5) -> list[Case]:
    """Every ladder run forecast from `fraction` of its steps, with the other 29 runs known in full."""
    curves = load_olmo_ladder_curves()
    return [
        Case("olmo", c.group, c, tuple(o for o in curves.values() if o.name != c.name), fraction)
        for c in curves.values()
    ]


def run_case(
    case: Case, *, law: str = DEFAULT_LAW, level: float = DEFAULT_LEVEL, max_points: int = MAX_POINTS_PER_RUN
) -> Outcome:
    """Forecast the case's target at its last logged step (its true final loss) from the cut history."""
    target = case.target
    cut = case.fraction * target.plan.total_steps
    start = time.perf_counter()
    forecast = forecast_loss(
        family_run(target, upto_step=cut, lineage=_lineage_id(target, case)),
        [family_run(c, lineage=_lineage_id(c, case)) for c in case.family],
        at_step=target.final_step,
        law=law,
        level=level,
        max_points=max_points,
    )
    return Outcome(case=case, forecast=forecast, actual=target.final_loss, seconds=time.perf_counter() - start)


def _lineage_id(curve: LoggedCurve, case: Case) -> str:
    """The history a curve shares: its trunk's id for a branch or replicate, its own id for a trunk with branches
    in the case, else none."""
    if curve.trunk:
        return run_id(curve, curve.trunk)
    branched = any(c.trunk == curve.name and c.group == curve.group for c in (case.target, *case.family))
    return run_id(curve) if branched else ""


def summarise(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """MAE and worst error of the forecasts and of the baseline, bias, coverage of the nominal interval and at
    80/90/95%, the number of forecasts made and of those refused, and the mean seconds per forecast."""
    made = [o for o in outcomes if o.forecast.ok]
    err = np.array([o.error for o in made])
    base = np.array([o.baseline_error for o in made if np.isfinite(o.baseline_error)])
    out = {
        "n": float(len(outcomes)),
        "n_made": float(len(made)),
        "mae": float(np.mean(np.abs(err))) if err.size else float("nan"),
        "worst": float(np.max(np.abs(err))) if err.size else float("nan"),
        "bias": float(np.mean(err)) if err.size else float("nan"),
        "baseline_mae": float(np.mean(np.abs(base))) if base.size else float("nan"),
        "baseline_bias": float(np.mean(base)) if base.size else float("nan"),
        "coverage": float(np.mean([o.covered() for o in made])) if made else float("nan"),
        "seconds": float(np.mean([o.seconds for o in outcomes])) if outcomes else float("nan"),
    }
    for level in (0.8, 0.9, 0.95):
        out[f"coverage_{int(level * 100)}"] = float(np.mean([o.covered(level) for o in made])) if made else float("nan")
    return out


__all__ = [
    "DESIGN_SIZES",
    "HELD_OUT_SIZES",
    "MULTIPOWER_TARGETS",
    "Case",
    "Outcome",
    "family_run",
    "multipower_cases",
    "multipower_cross_size_cases",
    "multipower_family_cases",
    "olmo_cases",
    "run_case",
    "run_id",
    "summarise",
]
