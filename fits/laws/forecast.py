"""Forecasts of a running run's final loss from its history, its planned schedule and the family's finished runs;
and the verdict of a forecast against the family's scaling law (docs/curves.md, "Forecasts").

Before its learning rate decays, a run's history says nothing about how much the decay will lower its loss: the
annealing term is not identified from the curve alone. A forecast therefore needs (1) the run's planned schedule
(its remaining learning rates) and (2) annealing parameters lent by runs of the family whose learning rate has
decayed. The lending rule: runs that share history with the target (its branches, its trunk, its replicates) never
lend; runs of the target's size lend when one of them has decayed; otherwise decayed runs of other sizes lend
(the annealing parameters are shared across sizes in units of each size's peak learning rate) and the forecast
warns. Without any decayed run and with a decay still to come, there is no forecast, and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import norm
from scipy.stats import t as student_t

from fits.laws.curves import (
    CURVE_LAWS,
    MAX_POINTS_PER_RUN,
    RunCurve,
    bin_history,
    fit_curves,
    fit_power,
    prediction_gradient,
)
from fits.laws.observations import FitFailed, FloatArray
from fits.laws.schedules import DECAYED_FRACTION, Schedule

DEFAULT_LAW = "annealing"
FALLBACK_LAW = "annealing"  # what "auto" takes with too few backtests: the default law
FORECAST_LAWS = ("auto", *CURVE_LAWS)
DEFAULT_LEVEL = 0.95
# The structural error of a borrowed annealing term: its 1-sigma error is this fraction of the part of the
# forecast's annealing term the run has not yet lived through. Calibrated on the design curves (MultiPower 25M and
# 100M, one decayed lender each, from 25% and 50%: 56 forecasts) the split-conformal way: the smallest fraction
# (0.084, rounded up) that puts ceil(0.95 (n + 1)) = 55 of the n = 56 design forecasts inside their 95% intervals
# (docs/curves.md, "Interval").
MODEL_ERROR_FRACTION = 0.085
MIN_TARGET_POINTS = 5  # logged losses after warmup a target needs before it can be forecast
MAX_FIT_RUNS = 8  # runs in one forecast's fit (the target included): bounds the work
PATH_POINTS = 32  # steps of the drawn path from the last logged step to the forecast step
MAX_BACKTEST_RUNS = 4  # finished runs of the family a forecast backtests on (per law)
MIN_BACKTEST_RUNS = 2  # below this many backtests, the law is FALLBACK_LAW and the model error the fraction rule
FINISHED_FRACTION = 0.98  # a run whose log reaches this fraction of its planned steps counts as finished


@dataclass(frozen=True)
class FamilyRun:
    """A run of the family as a forecast sees it: its logged history so far and its (planned) schedule. ``run`` is
    an id unique in the family (the target is told from the others by it).

    ``group`` is the model size (runs of a group share L0, A and alpha). ``lineage`` names the history the run
    shares with others: runs with the same non-empty lineage (a constant-LR trunk and the cooldowns branched off it,
    or two replicates of one configuration) never lend to one another, since one would carry the other's future.
    """

    run: str
    group: str
    steps: FloatArray
    loss: FloatArray
    schedule: Schedule
    lineage: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", np.ascontiguousarray(self.steps, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "loss", np.ascontiguousarray(self.loss, dtype=np.float64).reshape(-1))
        if self.steps.shape != self.loss.shape:
            raise ValueError(f"{self.run}: steps and loss must have the same length")

    @property
    def last_step(self) -> int:
        ok = np.isfinite(self.steps) & np.isfinite(self.loss)
        return int(self.steps[ok].max()) if np.any(ok) else 0

    @property
    def finished(self) -> bool:
        return self.last_step >= FINISHED_FRACTION * self.schedule.total_steps

    def cut(self, upto_step: float) -> FamilyRun:
        """The run as it was at `upto_step`: its history up to that step."""
        keep = self.steps <= upto_step
        return FamilyRun(self.run, self.group, self.steps[keep], self.loss[keep], self.schedule, self.lineage)

    def has_decayed(self, fraction: float = DECAYED_FRACTION) -> bool:
        """Whether the learning rate had fallen to at most `fraction` of its peak by the last logged step."""
        return self.last_step > 0 and self.schedule.has_decayed(self.last_step, fraction=fraction)

    def curve(self, max_points: int = MAX_POINTS_PER_RUN) -> RunCurve:
        """The history after warmup (the laws do not describe the warmup), binned, as a curve fit takes it."""
        ok = np.isfinite(self.steps) & np.isfinite(self.loss)
        ok &= (self.steps >= warmup_end(self.schedule)) & (self.steps <= self.schedule.total_steps)
        st, ls, counts = bin_history(self.steps[ok], self.loss[ok], max_points=max_points)
        return RunCurve(run=self.run, steps=st, loss=ls, schedule=self.schedule, group=self.group, weights=counts)


def warmup_end(schedule: Schedule) -> int:
    """The first step at the schedule's peak learning rate: the end of warmup (at least step 1)."""
    return max(int(np.argmax(schedule.lr)), 1)


@dataclass(frozen=True)
class Forecast:
    """A forecast of one run's loss at a step of its plan (by default its last), or why there is none.

    ``status`` is ``ok`` or ``unavailable`` (then ``reason`` says why and the numbers are None). ``interval`` is
    the central ``level`` interval and ``sd`` its half-width over the normal quantile at ``level`` (the interval
    read as normal; with a model error from a few backtests the half-width uses Student's t, so ``sd`` is the
    normal-equivalent at ``level``, not a standard deviation at every level); ``fraction_seen`` is the last logged
    step over the forecast step; ``lenders`` are the runs whose decay identified the annealing terms (the target
    itself when its own learning rate has decayed); ``fit_runs`` every run in the fit; ``baseline_loss`` what the
    schedule-blind power law in steps says, for comparison.
    """

    run: str
    status: str
    reason: str
    at_step: int
    fraction_seen: float
    law: str
    level: float
    loss: float | None = None
    interval: tuple[float, float] | None = None
    sd: float | None = None
    lenders: list[str] = field(default_factory=list)
    fit_runs: list[str] = field(default_factory=list)
    baseline_loss: float | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, float] = field(default_factory=dict)
    # The fitted law from the last logged step to at_step, with its band: {"step", "loss", "low", "high"}.
    path: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "run": self.run,
            "status": self.status,
            "reason": self.reason,
            "at_step": self.at_step,
            "fraction_seen": self.fraction_seen,
            "law": self.law,
            "level": self.level,
            "loss": self.loss,
            "interval": None if self.interval is None else [self.interval[0], self.interval[1]],
            "sd": self.sd,
            "lenders": list(self.lenders),
            "fit_runs": list(self.fit_runs),
            "baseline_loss": self.baseline_loss,
            "warnings": list(self.warnings),
            "details": dict(self.details),
            "path": dict(self.path),
        }


def _shares_history(a: FamilyRun, b: FamilyRun) -> bool:
    return a.run == b.run or (bool(a.lineage) and a.lineage == b.lineage)


def choose_fit_runs(target: FamilyRun, family: Sequence[FamilyRun], *, max_runs: int = MAX_FIT_RUNS) -> list[FamilyRun]:
    """The runs a forecast of `target` fits with it (the lending rule; module docstring).

    Order: the target's size's decayed runs, then its size's other runs (they inform L0, A, alpha only), then, only
    when none of the target's size has decayed, other sizes' decayed runs (nearest size first). Runs sharing
    history with the target are left out; within each tier the longest-seen runs come first; at most
    `max_runs` - 1 runs besides the target.
    """
    pool = [r for r in family if not _shares_history(target, r) and r.last_step > 0]
    same = [r for r in pool if r.group == target.group]
    same_decayed = sorted((r for r in same if r.has_decayed()), key=lambda r: -r.last_step)
    same_other = sorted((r for r in same if not r.has_decayed()), key=lambda r: -r.last_step)
    chosen = same_decayed + same_other
    if not same_decayed:
        others = [r for r in pool if r.group != target.group and r.has_decayed()]
        size = _group_size(target.group)
        others.sort(
            key=lambda r: (
                abs(math.log(_group_size(r.group) / size)) if size and _group_size(r.group) else 0.0,
                -r.last_step,
            )
        )
        chosen += others
    return chosen[: max(max_runs - 1, 0)]


def _group_size(group: str) -> float:
    """A group name's parameter count when it reads as one ("400M", "1.3B", "7e9"), else 0."""
    text = group.strip().upper()
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(text[-1:], 1.0)
    try:
        value = float(text[:-1] if text[-1:] in "KMBT" else text) * scale
    except ValueError:
        return 0.0
    return value if value > 0 else 0.0


def backtest_errors(
    target: FamilyRun,
    family: Sequence[FamilyRun],
    *,
    law: str,
    fraction: float,
    max_runs: int = MAX_BACKTEST_RUNS,
    max_points: int = MAX_POINTS_PER_RUN,
) -> dict[str, float]:
    """Forecast errors of `law` on the family's finished, decayed runs, each seen up to `fraction` of its steps.

    The backtested runs are those the lending rule would lend to `target` (choose_fit_runs), finished and decayed,
    at most `max_runs`; each is forecast from the rest of the family as it is now (the target's history so far
    included; runs sharing its history left out), and its error is forecast - its last logged loss. Returns
    {run: error}; a backtest that cannot be made is left out.
    """
    others = [r for r in family if r.run != target.run]
    picked = [r for r in choose_fit_runs(target, others) if r.finished and r.has_decayed()][:max_runs]
    out: dict[str, float] = {}
    if len(picked) < MIN_BACKTEST_RUNS:
        return out  # too few to use: the caller falls back to the fraction rule
    for run in picked:
        context = [target, *[r for r in others if not _shares_history(run, r)]]
        seen = run.cut(fraction * run.schedule.total_steps)
        fc = _forecast_with(
            seen,
            context,
            at_step=run.last_step,
            law=law,
            level=DEFAULT_LEVEL,
            max_runs=MAX_FIT_RUNS,
            sd_model=None,
            max_points=max_points,
        )
        if fc.ok and fc.loss is not None:
            out[run.run] = float(fc.loss - run.loss[np.isfinite(run.loss)][-1])
    return out


def forecast_loss(
    target: FamilyRun,
    family: Sequence[FamilyRun] = (),
    *,
    at_step: int | None = None,
    law: str = DEFAULT_LAW,
    level: float = DEFAULT_LEVEL,
    max_runs: int = MAX_FIT_RUNS,
    backtest: bool = True,
    max_points: int = MAX_POINTS_PER_RUN,
) -> Forecast:
    """Forecast `target`'s loss at `at_step` (default: the end of its schedule) from its history so far and the
    family's runs (each with its own history and schedule; the target may be among them).

    The fit (fits.laws.curves.fit_curves) takes the target's post-warmup history and the runs the lending rule
    chooses (choose_fit_runs). With `backtest`, each law is first backtested on the family's finished, decayed runs
    seen up to the target's fraction (backtest_errors): ``auto`` takes the law with the smaller root-mean-square
    backtest error. The model error's half-width is the larger of t_n x that RMS error (Student's t with n = the
    number of backtests) and z x MODEL_ERROR_FRACTION x the annealing the run has yet to live through (the design
    set's rule, the floor); with fewer than MIN_BACKTEST_RUNS backtests ``auto`` is FALLBACK_LAW and the model
    error is that fraction rule alone. The interval's half-width combines it with z x the delta-method sd of the
    prediction (covariance inflated for serial correlation) in quadrature. Unavailable, with the reason, when the
    target has fewer than MIN_TARGET_POINTS points after warmup, when a decay is still to come and no run in the
    fit has decayed, or when the fit fails. Every history is binned to at most `max_points` points (the bound on
    the work).
    """
    if law not in FORECAST_LAWS:
        raise ValueError(f"law must be one of {', '.join(FORECAST_LAWS)}")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    end = target.schedule.total_steps if at_step is None else int(at_step)
    if not 1 <= end <= target.schedule.total_steps:
        raise ValueError("at_step must lie within the target's schedule")
    fraction = min(target.last_step / end, 1.0)
    candidates = list(CURVE_LAWS) if law == "auto" else [law]
    scores: dict[str, dict[str, float]] = {}
    if backtest:
        for name in candidates:
            scores[name] = backtest_errors(target, family, law=name, fraction=fraction, max_points=max_points)
    usable = {k: v for k, v in scores.items() if len(v) >= MIN_BACKTEST_RUNS}
    rms = {k: float(np.sqrt(np.mean(np.square(list(v.values()))))) for k, v in usable.items()}
    chosen = law
    if law == "auto":
        chosen = min(rms, key=lambda k: rms[k]) if len(rms) == len(candidates) else FALLBACK_LAW
    result = _forecast_with(
        target,
        family,
        at_step=end,
        law=chosen,
        level=level,
        max_runs=max_runs,
        sd_model=(rms[chosen], len(usable[chosen])) if chosen in rms else None,
        max_points=max_points,
    )
    details = dict(result.details)
    for name, errors in scores.items():
        details[f"backtest_runs_{name}"] = float(len(errors))
        if name in rms:
            details[f"backtest_rms_{name}"] = rms[name]
    return replace(result, details=details)


def _forecast_with(
    target: FamilyRun,
    family: Sequence[FamilyRun],
    *,
    at_step: int,
    law: str,
    level: float,
    max_runs: int,
    sd_model: tuple[float, int] | None,
    max_points: int = MAX_POINTS_PER_RUN,
) -> Forecast:
    """One forecast with a fixed law; `sd_model` is (RMS backtest error, number of backtests), or None for the
    fraction rule."""
    end = at_step
    last = target.last_step
    seen = float(min(last / end, 1.0)) if end > 0 else 0.0

    def refuse(reason: str, fit_runs: Sequence[str] = ()) -> Forecast:
        return Forecast(
            run=target.run,
            status="unavailable",
            reason=reason,
            at_step=end,
            fraction_seen=seen,
            law=law,
            level=level,
            fit_runs=list(fit_runs),
        )

    own = target.curve(max_points)
    if own.steps.shape[0] < MIN_TARGET_POINTS:
        return refuse(
            f"too few points: {own.steps.shape[0]} logged losses after warmup (step {warmup_end(target.schedule)}); "
            f"a forecast needs {MIN_TARGET_POINTS}"
        )
    runs = choose_fit_runs(target, [r for r in family if r.run != target.run], max_runs=max_runs)
    decay_ahead = target.schedule.lowest_fraction(end) < target.schedule.lowest_fraction(last) - 1e-12
    lenders = [r.run for r in runs if r.has_decayed()]
    if target.has_decayed():
        lenders = [target.run, *lenders]
    if decay_ahead and not lenders:
        return refuse(
            "no decay seen in the family yet: until a run of the family has decayed its learning rate (to "
            f"{DECAYED_FRACTION:.0%} of its peak or below), the loss the planned decay will remove is not identified",
            [target.run, *[r.run for r in runs]],
        )
    warnings: list[str] = []
    if decay_ahead and not target.has_decayed() and all(r.group != target.group for r in runs if r.has_decayed()):
        warnings.append(
            "no run of this size has decayed: the annealing terms are borrowed from other sizes ("
            + ", ".join(sorted({r.group for r in runs if r.has_decayed()}))
            + ")"
        )
    curves = [own, *[r.curve(max_points) for r in runs]]
    curves = [c for c in curves if c.steps.shape[0] > 0]
    try:
        fit = fit_curves(curves, law=law, max_points=max_points)
    except FitFailed as exc:
        return refuse(f"the curve fit failed: {exc}", [c.run for c in curves])
    # The last logged step, the forecast step, then the path between them (for drawing; its last point is the
    # forecast itself).
    path_steps = np.unique(np.linspace(max(last, 1), end, PATH_POINTS).round().astype(np.int64))
    steps = np.concatenate([[max(last, 1), end], path_steps])
    pred, grad = prediction_gradient(fit, target.schedule, steps, target.group)
    var_param = float(grad[1] @ fit.covariance @ grad[1])
    term = fit.annealing_removed(target.schedule, steps, target.group)
    unseen = float(term[1] - term[0])
    z = float(norm.ppf(0.5 + level / 2.0))
    floor = MODEL_ERROR_FRACTION * abs(unseen)
    from_backtest = False
    if sd_model is None:
        model, multiplier = floor, z
    else:
        # A model sd estimated from n backtest errors is itself uncertain: a new error over it follows Student's t
        # with n degrees of freedom, not the normal. The design set's rule (calibrated on 56 forecasts) stays the
        # floor of the model's half-width: a few lucky backtests do not narrow the interval below it.
        t_n = float(student_t.ppf(0.5 + level / 2.0, df=max(sd_model[1], 1)))
        from_backtest = t_n * sd_model[0] > z * floor
        model, multiplier = (sd_model[0], t_n) if from_backtest else (floor, z)
    half = math.sqrt(z**2 * max(var_param, 0.0) + (multiplier * model) ** 2)
    sd = half / z
    path = _path(
        path_steps,
        pred[2:],
        np.einsum("ij,jk,ik->i", grad[2:], fit.covariance, grad[2:]),
        term[2:] - term[0],
        total_unseen=unseen,
        z=z,
        model_half=multiplier * model,
        misfit=float(fit.metrics["rmse"]),
    )
    loss = float(pred[1])
    baseline: float | None
    try:
        baseline = float(fit_power(own.steps, own.loss, max_points=max_points).predict(end))
    except FitFailed:
        baseline = None
    warnings += fit.warnings
    if not math.isfinite(loss) or not math.isfinite(sd):
        return refuse("the curve fit gave a non-finite forecast", [c.run for c in curves])
    return Forecast(
        run=target.run,
        status="ok",
        reason="",
        at_step=end,
        fraction_seen=seen,
        law=law,
        level=level,
        loss=loss,
        interval=(loss - z * sd, loss + z * sd),
        sd=sd,
        lenders=lenders,
        fit_runs=[c.run for c in curves],
        baseline_loss=baseline,
        warnings=warnings,
        path=path,
        details={
            "sd_parameters": math.sqrt(max(var_param, 0.0)),
            "sd_model": model,
            "sd_model_from_backtest": float(from_backtest),
            "backtests": float(0 if sd_model is None else sd_model[1]),
            "model_multiplier": multiplier,
            "annealing_term": float(term[1]),
            "annealing_unseen": unseen,
            "fit_rmse": fit.metrics["rmse"],
            "fit_points": fit.metrics["n_points"],
        },
    )


def _path(
    steps: npt.NDArray[np.int64],
    loss: FloatArray,
    var_param: FloatArray,
    unseen: FloatArray,
    *,
    total_unseen: float,
    z: float,
    model_half: float,
    misfit: float,
) -> dict[str, list[float]]:
    """The fitted law from the last logged step to the forecast step, with a band for drawing: at each step the
    parameters' delta-method spread and the model error's half-width scaled by how far the step is from the seen
    curve: the larger of the share of the remaining steps and the share of the unseen annealing lived through by
    then (an extrapolation errs with distance in steps, a borrowed decay with the decay), so the band ends at the
    interval.
    Near the last logged step the law's misfit to the seen curve (the fit's RMSE) is most of the error, and the
    transfer error least: the misfit enters with the share still to come."""
    span = max(float(steps[-1] - steps[0]), 1.0)
    share = (steps - steps[0]) / span
    if abs(total_unseen) > 1e-12:
        share = np.maximum(share, np.clip(np.abs(unseen) / abs(total_unseen), 0.0, 1.0))
    share[-1] = 1.0  # the last step is the forecast's: its band is the interval, even when no step is left to go
    half = np.sqrt(z**2 * np.maximum(var_param, 0.0) + (model_half * share) ** 2 + (z * misfit * (1.0 - share)) ** 2)
    return {
        "step": [float(v) for v in steps],
        "loss": [float(v) for v in loss],
        "low": [float(v) for v in loss - half],
        "high": [float(v) for v in loss + half],
    }


# ---------------------------------------------------------------------------------------------------------------
# Verdict against the family's scaling law


@dataclass(frozen=True)
class Verdict:
    """Where a forecast lands against the scaling law: ``on`` the law, or ``above``/``below`` it by ``percent``
    (100 x (forecast - law) / law) +- ``percent_margin`` at ``level``; ``text`` says it in words."""

    verdict: str
    difference: float
    percent: float
    percent_margin: float
    level: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "difference": self.difference,
            "percent": self.percent,
            "percent_margin": self.percent_margin,
            "level": self.level,
            "text": self.text,
        }


def _interval_sd(interval: tuple[float, float] | None, level: float) -> float:
    if interval is None:
        return 0.0
    lo, hi = float(interval[0]), float(interval[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError("an interval must be finite with low <= high")
    return (hi - lo) / (2.0 * float(norm.ppf(0.5 + level / 2.0)))


def compare_with_law(
    forecast_loss: float,
    forecast_interval: tuple[float, float] | None,
    law_loss: float,
    law_interval: tuple[float, float] | None,
    *,
    forecast_level: float = DEFAULT_LEVEL,
    law_level: float = DEFAULT_LEVEL,
    level: float = DEFAULT_LEVEL,
) -> Verdict:
    """The verdict of a forecast final loss against the law's prediction for the run's (N, D).

    Each interval (None: exact) is read as normal, sd = width / (2 z); the difference's sd is the two combined
    (independent errors). ``above`` when the whole `level` interval of forecast - law lies above zero, ``below``
    when below, ``on`` otherwise; the percentages are relative to the law's loss.
    """
    for name, value in (("forecast_loss", forecast_loss), ("law_loss", law_loss)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number")
    for name, value in (("forecast_level", forecast_level), ("law_level", law_level), ("level", level)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1")
    sd = math.hypot(_interval_sd(forecast_interval, forecast_level), _interval_sd(law_interval, law_level))
    diff = float(forecast_loss - law_loss)
    margin = float(norm.ppf(0.5 + level / 2.0)) * sd
    percent = 100.0 * diff / law_loss
    percent_margin = 100.0 * margin / law_loss
    if diff - margin > 0:
        verdict, text = "above", f"above the law by {percent:.2f}% ± {percent_margin:.2f}%"
    elif diff + margin < 0:
        verdict, text = "below", f"below the law by {-percent:.2f}% ± {percent_margin:.2f}%"
    else:
        verdict, text = "on", f"on the law ({percent:+.2f}% ± {percent_margin:.2f}%)"
    return Verdict(
        verdict=verdict, difference=diff, percent=percent, percent_margin=percent_margin, level=level, text=text
    )


__all__ = [
    "DEFAULT_LAW",
    "FALLBACK_LAW",
    "FORECAST_LAWS",
    "MAX_BACKTEST_RUNS",
    "MIN_BACKTEST_RUNS",
    "backtest_errors",
    "DEFAULT_LEVEL",
    "MAX_FIT_RUNS",
    "MIN_TARGET_POINTS",
    "MODEL_ERROR_FRACTION",
    "FamilyRun",
    "Forecast",
    "Verdict",
    "choose_fit_runs",
    "compare_with_law",
    "forecast_loss",
    "warmup_end",
]
