"""Learning-rate schedules: the per-step learning rate of a run, built from a description of its plan, from its
logged ``lr`` points, or from both (the logged past and the planned rest). Pure NumPy (docs/curves.md, "Schedules").

A schedule is the array ``lr[s]``, the learning rate of optimiser step ``s`` for ``s = 0 .. total_steps``. The
curve laws (fits.laws.curves) read only that array: its running sum (the learning-rate area S1) and its decreases
(the annealing terms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DECAYS = ("constant", "cosine", "linear", "exponential", "step")
# Above this many steps a schedule is refused: the per-step array would take more than 80 MB.
MAX_STEPS = 10_000_000
# A decayed run: its learning rate has fallen to at most this fraction of its peak (docs/curves.md, "Lending").
DECAYED_FRACTION = 0.5


class ScheduleError(ValueError):
    """A schedule description or a logged learning-rate history that cannot define a schedule; the message names
    the field."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A run's planned learning-rate schedule, described.

    - ``total_steps``: the planned number of optimiser steps; the schedule covers steps 0 .. total_steps.
    - ``peak_lr``: the learning rate after warmup.
    - ``warmup_steps``: linear warmup, lr(s) = peak_lr * s / warmup_steps for s < warmup_steps (0: none).
    - ``decay``: the shape after ``decay_start``: ``constant`` (no decay), ``cosine`` (half a cosine from peak_lr to
      final_lr at total_steps), ``linear``, ``exponential`` (geometric, final_lr > 0) or ``step`` (peak_lr before
      decay_start, final_lr from decay_start on).
    - ``decay_start``: the step the decay starts (default: the end of warmup). A warmup-stable-decay (WSD) run is
      ``linear`` or ``exponential`` with a late ``decay_start``.
    - ``final_lr``: the learning rate at total_steps (for ``step``, from decay_start on); ignored by ``constant``.
    - ``tokens_per_step``: optional, so a forecast can be stated in tokens as well as steps.
    """

    total_steps: int
    peak_lr: float
    warmup_steps: int = 0
    decay: str = "cosine"
    decay_start: int | None = None
    final_lr: float = 0.0
    tokens_per_step: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.total_steps, bool) or not isinstance(self.total_steps, int | np.integer):
            raise ScheduleError("total_steps must be an integer")
        if not 1 <= int(self.total_steps) <= MAX_STEPS:
            raise ScheduleError(f"total_steps must be between 1 and {MAX_STEPS}")
        if not (math.isfinite(self.peak_lr) and self.peak_lr > 0):
            raise ScheduleError("peak_lr must be a positive number")
        if not 0 <= int(self.warmup_steps) <= int(self.total_steps):
            raise ScheduleError("warmup_steps must be between 0 and total_steps")
        if self.decay not in DECAYS:
            raise ScheduleError(f"decay must be one of {', '.join(DECAYS)}")
        start = self.start_of_decay
        if not int(self.warmup_steps) <= start <= int(self.total_steps):
            raise ScheduleError("decay_start must be between warmup_steps and total_steps")
        if not (math.isfinite(self.final_lr) and 0 <= self.final_lr <= self.peak_lr):
            raise ScheduleError("final_lr must be between 0 and peak_lr")
        if self.decay == "exponential" and self.final_lr <= 0:
            raise ScheduleError("final_lr must be positive for an exponential decay")
        if self.tokens_per_step is not None and not (math.isfinite(self.tokens_per_step) and self.tokens_per_step > 0):
            raise ScheduleError("tokens_per_step must be a positive number")

    @property
    def start_of_decay(self) -> int:
        """The step the decay starts: decay_start, or the end of warmup when it is not given."""
        return int(self.warmup_steps if self.decay_start is None else self.decay_start)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; ScheduleSpec.from_dict reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleSpec:
        """A description from its JSON form; unknown keys are a ScheduleError naming them."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ScheduleError(f"unknown schedule fields: {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimiser step, ``lr[s]`` for s = 0 .. total_steps (non-negative, finite)."""

    lr: FloatArray

    def __post_init__(self) -> None:
        arr = np.ascontiguousarray(self.lr, dtype=np.float64).reshape(-1)
        if arr.shape[0] < 2:
            raise ScheduleError("a schedule needs at least two steps")
        if arr.shape[0] > MAX_STEPS + 1:
            raise ScheduleError(f"a schedule may have at most {MAX_STEPS} steps")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ScheduleError("learning rates must be finite and non-negative")
        if not np.any(arr > 0):
            raise ScheduleError("a schedule needs a positive learning rate")
        arr.setflags(write=False)
        object.__setattr__(self, "lr", arr)

    @property
    def total_steps(self) -> int:
        """The last step the schedule covers."""
        return int(self.lr.shape[0] - 1)

    @property
    def peak_lr(self) -> float:
        return float(self.lr.max())

    def area(self) -> FloatArray:
        """S(s) = lr[0] + ... + lr[s]: the learning-rate area up to and including step s (float64 running sum)."""
        return np.cumsum(self.lr)

    def lowest_fraction(self, upto_step: int | None = None) -> float:
        """The lowest learning rate after the peak, up to `upto_step`, as a fraction of the peak (1.0: no decay)."""
        last = self.total_steps if upto_step is None else int(min(max(upto_step, 0), self.total_steps))
        seen = self.lr[: last + 1]
        peak_at = int(np.argmax(seen))
        return float(seen[peak_at:].min() / seen[peak_at]) if seen[peak_at] > 0 else 1.0

    def has_decayed(self, upto_step: int | None = None, *, fraction: float = DECAYED_FRACTION) -> bool:
        """Whether the learning rate fell to at most `fraction` of its peak by `upto_step` (default: the end)."""
        return self.lowest_fraction(upto_step) <= fraction


def build_schedule(spec: ScheduleSpec) -> Schedule:
    """The per-step learning rate a description plans (the formulas of ScheduleSpec's docstring)."""
    total = int(spec.total_steps)
    s = np.arange(total + 1, dtype=np.float64)
    lr = np.full(total + 1, float(spec.peak_lr))
    warm = int(spec.warmup_steps)
    if warm > 0:
        lr[:warm] = spec.peak_lr * s[:warm] / warm
    start = spec.start_of_decay
    if spec.decay != "constant" and start < total:
        tail = slice(start, total + 1)
        if spec.decay == "step":
            lr[tail] = spec.final_lr
        else:
            frac = (s[tail] - start) / (total - start)
            peak, final = float(spec.peak_lr), float(spec.final_lr)
            if spec.decay == "cosine":
                lr[tail] = final + (peak - final) * 0.5 * (1.0 + np.cos(np.pi * frac))
            elif spec.decay == "linear":
                lr[tail] = peak + (final - peak) * frac
            else:  # exponential
                lr[tail] = peak * (final / peak) ** frac
    return Schedule(lr)


def schedule_from_log(
    steps: Sequence[float] | npt.ArrayLike,
    lrs: Sequence[float] | npt.ArrayLike,
    *,
    plan: ScheduleSpec | None = None,
    total_steps: int | None = None,
) -> Schedule:
    """A schedule from a run's logged ``lr`` points, with `plan` describing the steps the log does not cover.

    Between logged points the learning rate is interpolated linearly (logged at every step, it is exact). Steps
    after the last logged point follow `plan` (the planned rest of the run); steps before the first follow `plan`
    too, or, without a plan, hold the first logged value. Without a plan the schedule ends at `total_steps`
    (default: the last logged step), holding the last logged value to the end. Duplicate steps keep their last
    value. Raises ScheduleError on empty, negative, non-finite or unsorted-and-unsortable input.
    """
    st = np.asarray(steps, dtype=np.float64).reshape(-1)
    lv = np.asarray(lrs, dtype=np.float64).reshape(-1)
    if st.shape != lv.shape:
        raise ScheduleError("steps and lrs must have the same length")
    if st.shape[0] == 0:
        raise ScheduleError("no logged learning rates")
    if not (np.all(np.isfinite(st)) and np.all(np.isfinite(lv))):
        raise ScheduleError("logged steps and learning rates must be finite")
    if np.any(st < 0) or np.any(lv < 0):
        raise ScheduleError("logged steps and learning rates must be non-negative")
    order = np.argsort(st, kind="stable")
    st, lv = st[order], lv[order]
    # Keep the last value logged for a repeated step (a re-logged point replaces the earlier one).
    keep = np.append(st[1:] != st[:-1], True)
    st, lv = np.rint(st[keep]).astype(np.int64), lv[keep]
    last_logged = int(st[-1])
    if plan is not None:
        end = int(plan.total_steps)
        if last_logged > end:
            raise ScheduleError("the log runs past the plan's total_steps")
        lr = build_schedule(plan).lr.copy()
    else:
        end = last_logged if total_steps is None else int(total_steps)
        if end < last_logged:
            raise ScheduleError("total_steps is before the last logged step")
        if not 1 <= end <= MAX_STEPS:
            raise ScheduleError(f"total_steps must be between 1 and {MAX_STEPS}")
        lr = np.empty(end + 1)
        lr[: int(st[0])] = lv[0]
        lr[last_logged:] = lv[-1]
    span = np.arange(int(st[0]), last_logged + 1)
    lr[span] = np.interp(span, st, lv)
    return Schedule(lr)


def planned_mismatch(logged: Schedule, plan: ScheduleSpec, upto_step: int) -> float:
    """The largest |logged - planned| learning rate up to `upto_step`, as a fraction of the planned peak: how far
    the run has strayed from its description (a forecast warns above a few percent)."""
    planned = build_schedule(plan).lr
    last = int(min(upto_step, logged.total_steps, planned.shape[0] - 1))
    diff = np.abs(logged.lr[: last + 1] - planned[: last + 1])
    return float(diff.max() / planned.max())


def schedule_spec(stored: Mapping[str, Any] | None) -> ScheduleSpec | None:
    """The description of a run's stored schedule (the JSON form of runs.schedules, docs/api.md "Schedules");
    `wsd` is a linear decay from decay_start. None without one."""
    if not stored:
        return None
    kind = str(stored.get("lr_schedule") or "cosine")
    return ScheduleSpec(
        total_steps=int(stored["total_steps"]),
        peak_lr=float(stored["peak_lr"]),
        warmup_steps=int(stored.get("warmup_steps") or 0),
        decay="linear" if kind == "wsd" else kind,
        decay_start=None if stored.get("decay_start") is None else int(stored["decay_start"]),
        final_lr=float(stored.get("final_lr") or 0.0),
        tokens_per_step=None if stored.get("tokens_per_step") is None else float(stored["tokens_per_step"]),
    )


__all__ = [
    "DECAYED_FRACTION",
    "DECAYS",
    "MAX_STEPS",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "build_schedule",
    "planned_mismatch",
    "schedule_from_log",
    "schedule_spec",
]
