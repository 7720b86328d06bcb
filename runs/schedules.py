"""A run's described learning-rate schedule (`Run.schedule`): the JSON form the API, the admin and the MLflow
mapping store, and its validation, field by field. Pure Python, no Django (docs/api.md, "Schedules").

The maths of schedules (the per-step learning rate, the laws that read it) is fits.laws.schedules; runs may not
import fits, so the checks on the stored form live here. Every schedule this module accepts builds a
fits.laws.schedules.ScheduleSpec (tests/runs/test_schedule_fields.py holds the two to that).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The schedule kinds: fits.laws.schedules.DECAYS, plus `wsd` (warmup-stable-decay: linear decay from decay_start,
# which it requires).
LR_SCHEDULES = ("constant", "cosine", "linear", "exponential", "step", "wsd")
SCHEDULE_FIELDS = (
    "total_steps",
    "peak_lr",
    "warmup_steps",
    "lr_schedule",
    "decay_start",
    "final_lr",
    "tokens_per_step",
)
REQUIRED_SCHEDULE_FIELDS = ("total_steps", "peak_lr")
# As fits.laws.schedules.MAX_STEPS: a longer schedule's per-step array would take more than 80 MB.
MAX_SCHEDULE_STEPS = 10_000_000


def _integer(value: Any) -> int | None:
    """An integer given as a JSON integer (or a float with no fraction, as JavaScript sends them), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def schedule_clean(value: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """(the stored form, {} ) for a valid schedule description, or (None, {field: [message]}) naming each bad field.

    The stored form has every field: `warmup_steps` 0, `lr_schedule` cosine, `decay_start` None (the end of
    warmup), `final_lr` 0 and `tokens_per_step` None unless given. Null clears a run's schedule (the caller's
    concern); here `value` must be an object.
    """
    if not isinstance(value, Mapping):
        return None, {"schedule": ["Must be a JSON object with total_steps and peak_lr (docs/api.md, Schedules)."]}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(value) - set(SCHEDULE_FIELDS))
    for name in unknown:
        errors[str(name)] = [f"Unknown schedule field; the fields are {', '.join(SCHEDULE_FIELDS)}."]
    for name in REQUIRED_SCHEDULE_FIELDS:
        if value.get(name) is None:
            errors[name] = ["Required."]

    total = _integer(value.get("total_steps"))
    if "total_steps" not in errors and (total is None or not 1 <= total <= MAX_SCHEDULE_STEPS):
        errors["total_steps"] = [f"Must be an integer between 1 and {MAX_SCHEDULE_STEPS}."]
    peak = _number(value.get("peak_lr"))
    if "peak_lr" not in errors and (peak is None or peak <= 0):
        errors["peak_lr"] = ["Must be a positive number."]
    # A field checked against another is checked only when that one is valid: one mistake, one error.
    total = None if "total_steps" in errors else total
    peak = None if "peak_lr" in errors else peak
    warmup = _integer(value.get("warmup_steps", 0))
    if warmup is None or warmup < 0 or (total is not None and warmup > total):
        errors["warmup_steps"] = ["Must be an integer between 0 and total_steps."]
        warmup = None
    kind = value.get("lr_schedule", "cosine")
    if kind not in LR_SCHEDULES:
        errors["lr_schedule"] = [f"Must be one of {', '.join(LR_SCHEDULES)}."]
    start_raw = value.get("decay_start")
    start = None if start_raw is None else _integer(start_raw)
    if start_raw is not None and (
        start is None or (warmup is not None and start < warmup) or (total is not None and start > total)
    ):
        errors["decay_start"] = ["Must be an integer between warmup_steps and total_steps."]
    elif kind == "wsd" and start_raw is None:
        errors["decay_start"] = ["Required for lr_schedule wsd (the step the decay starts)."]
    final = _number(value.get("final_lr", 0.0))
    if final is None or final < 0 or (peak is not None and final > peak):
        errors["final_lr"] = ["Must be a number between 0 and peak_lr."]
    elif kind == "exponential" and final <= 0:
        errors["final_lr"] = ["Must be positive for an exponential decay."]
    if (
        not {"warmup_steps", "decay_start", "final_lr", "lr_schedule"} & set(errors)
        and kind == "step"
        and final == 0
        and warmup is not None
        and warmup <= 1
        and (start if start is not None else warmup) <= warmup
    ):
        # A step down to 0 at the end of a warmup of at most one step: no step of the plan has a positive rate.
        errors["decay_start"] = ["A step decay to final_lr 0 must start after some step at a positive rate."]
    tokens_raw = value.get("tokens_per_step")
    tokens = None if tokens_raw is None else _number(tokens_raw)
    if tokens_raw is not None and (tokens is None or tokens <= 0):
        errors["tokens_per_step"] = ["Must be a positive number."]
    if errors:
        return None, errors
    return {
        "total_steps": total,
        "peak_lr": peak,
        "warmup_steps": warmup,
        "lr_schedule": kind,
        "decay_start": start,
        "final_lr": final,
        "tokens_per_step": tokens,
    }, {}


def schedule_text(value: Mapping[str, Any] | None) -> str:
    """A stored schedule in words, for reviewers: "cosine, peak 0.0003 after 2,000 warmup steps, down to 3e-05 at
    step 72,000 (decay from step 40,000); 524,288 tokens per step (37.7 billion tokens)"; "—" without one."""
    if not value:
        return "—"
    kind = value.get("lr_schedule") or "cosine"
    parts = [f"{kind}, peak {value.get('peak_lr'):g}"]
    if value.get("warmup_steps"):
        parts[0] += f" after {int(value['warmup_steps']):,} warmup steps"
    total = value.get("total_steps")
    ending = f"{total:,}" if isinstance(total, int) else str(total)
    if kind == "constant":
        parts.append(f"until step {ending}")
    else:
        parts.append(f"down to {float(value.get('final_lr') or 0.0):g} at step {ending}")
    text = ", ".join(parts)
    if value.get("decay_start") is not None:
        text += f" (decay from step {int(value['decay_start']):,})"
    per_step = value.get("tokens_per_step")
    if per_step and isinstance(total, int):
        text += f"; {float(per_step):,.0f} tokens per step ({float(per_step) * total / 1e9:,.1f} billion tokens)"
    return text


__all__ = ["LR_SCHEDULES", "MAX_SCHEDULE_STEPS", "SCHEDULE_FIELDS", "schedule_clean", "schedule_text"]
