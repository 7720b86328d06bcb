"""A plan request, typed and validated once: the budget, the constraints and the law asked for.

The API's serializers and the admin's plan form build a PlanRequest (budget_from, ConstraintsRequest.from_json);
law choice (planner.law_choice), the search (planner.search) and the record (planner.services) take it as it
is. Stored plans keep the request's JSON (`as_json`), so a rerun builds the same request again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fits.laws import LAWS, BitRequest
from planner.allocation import HARDWARE_PROFILES, MIN_BUDGET_FLOPS, budget_to_flops, get_hardware
from planner.errors import PlanInvalid, invalid

# A plan request's `law`: a law, or "auto": the best-ranked law of the family that can serve the request.
AUTO_LAW = "auto"
COST_MODELS = ("linear_bits", "hardware")
BUDGET_KEYS = ("flops", "gpu_hours", "hardware", "mfu")
CONSTRAINT_KEYS = (
    "n_params",
    "n_params_max",
    "n_tokens_max",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "bits_choices",
    "post_train_bits",
    "weights_memory_max_bytes",
    "tie_bits",  # extension: weight = activation = KV bits (fractional bits_choices sweeps)
)
_SIZE_KEYS = ("n_params", "n_params_max", "n_tokens_max", "weights_memory_max_bytes")
_BIT_KEYS = ("weight_bits", "activation_bits", "kv_bits", "post_train_bits")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


@dataclass(frozen=True)
class Budget:
    """A compute budget in 16-bit-equivalent FLOPs, with what was asked (`as_json`: only the keys given)."""

    flops: float
    json: dict[str, Any]
    hardware: str | None = None
    mfu: float | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.json)


def budget_from(raw: Any, *, section: str = "budget") -> Budget:
    """The budget rules, in one place: exactly one of flops or gpu_hours, hardware with gpu_hours, mfu only with
    it, a known hardware profile, finite positive numbers, and enough FLOPs for one parameter and one token.
    PlanInvalid names the field inside `section`."""
    if not isinstance(raw, Mapping):
        raise PlanInvalid({section: ['Must be an object: {"flops": C} or {"gpu_hours": H, "hardware": ...}.']})
    unknown = sorted(set(raw) - set(BUDGET_KEYS))
    if unknown:
        raise PlanInvalid({section: {key: ["Unknown field."] for key in unknown}})
    normal = {k: raw[k] for k in BUDGET_KEYS if raw.get(k) is not None}
    hardware = normal.get("hardware")
    if hardware is not None:
        try:
            hardware = get_hardware(str(hardware)).name
        except ValueError as exc:
            raise invalid(section, "hardware", str(exc)) from exc
        normal["hardware"] = hardware
    if ("flops" in normal) == ("gpu_hours" in normal):
        raise PlanInvalid({section: {"non_field_errors": ["Give exactly one of flops or gpu_hours."]}})
    for key in ("flops", "gpu_hours"):
        value = normal.get(key)
        if value is not None and not (_number(value) and math.isfinite(value) and value > 0):
            raise invalid(section, key, "Must be a finite positive number.")
    mfu = normal.get("mfu")
    if mfu is not None and not (_number(mfu) and 0 < mfu <= 1):
        raise invalid(section, "mfu", "Must be a number in (0, 1].")
    if "gpu_hours" in normal and hardware is None:
        choices = ", ".join(sorted(HARDWARE_PROFILES))
        raise invalid(section, "hardware", f"Required with gpu_hours (one of: {choices}).")
    if mfu is not None and "gpu_hours" not in normal:
        raise invalid(section, "mfu", "Only applies to a gpu_hours budget.")
    flops = budget_to_flops(flops=normal.get("flops"), gpu_hours=normal.get("gpu_hours"), hardware=hardware, mfu=mfu)
    if not flops >= MIN_BUDGET_FLOPS:
        key = "flops" if "flops" in normal else "gpu_hours"
        raise invalid(section, key, f"Too small to plan: {flops:g} FLOPs, below {MIN_BUDGET_FLOPS:g}.")
    return Budget(flops=flops, json=normal, hardware=hardware, mfu=mfu)


@dataclass(frozen=True)
class ConstraintsRequest:
    """The contract's plan constraints (docs/api.md, Plans): sizes and the precision part (`bits`, which each law
    turns into what its search runs: fits.laws.ScalingLaw.plan_bits). `json` is what was asked, normalised."""

    n_params: float | None = None
    n_params_max: float | None = None
    n_tokens_max: float | None = None
    weights_memory_max_bytes: float | None = None
    bits: BitRequest = field(default_factory=BitRequest)
    json: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> ConstraintsRequest:
        """Constraints from their JSON (a validated body, or a stored plan's); PlanInvalid for an unknown key or
        a value of the wrong type."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(CONSTRAINT_KEYS))
        if unknown:
            raise PlanInvalid({"constraints": {key: ["Unknown field."] for key in unknown}})
        normal = {k: raw[k] for k in CONSTRAINT_KEYS if raw.get(k) is not None}
        for key in (*_SIZE_KEYS, *_BIT_KEYS):
            if key in normal and not (_number(normal[key]) and math.isfinite(normal[key])):
                raise invalid("constraints", key, "A finite number is required.")
        choices = normal.get("bits_choices")
        if choices is not None:
            if not isinstance(choices, list | tuple) or not choices or not all(_number(b) for b in choices):
                raise invalid("constraints", "bits_choices", "A non-empty list of numbers is required.")
            normal["bits_choices"] = sorted({float(b) for b in choices})
        tie = normal.get("tie_bits", False)
        if not isinstance(tie, bool):
            raise invalid("constraints", "tie_bits", "Must be true or false.")

        def number(key: str) -> float | None:
            return None if key not in normal else float(normal[key])

        bits = BitRequest(
            weight_bits=number("weight_bits"),
            activation_bits=number("activation_bits"),
            kv_bits=number("kv_bits"),
            bits_choices=None if choices is None else tuple(normal["bits_choices"]),
            post_train_bits=number("post_train_bits"),
            tie_bits=tie,
        )
        return cls(**{key: number(key) for key in _SIZE_KEYS}, bits=bits, json=normal)

    def as_json(self) -> dict[str, Any]:
        return dict(self.json)


@dataclass(frozen=True)
class PlanRequest:
    """What a plan (or a suggestion) is asked for: a family, a budget, constraints, a law ("auto") and a cost
    model. PlanInvalid for a cost model or law name that does not exist."""

    family: str
    budget: Budget
    constraints: ConstraintsRequest = field(default_factory=ConstraintsRequest)
    law: str = AUTO_LAW
    cost_model: str = "linear_bits"

    def __post_init__(self) -> None:
        if self.law != AUTO_LAW and self.law not in LAWS:
            raise PlanInvalid({"law": [f"Unknown law {self.law!r}."]})
        if self.cost_model not in COST_MODELS:
            raise PlanInvalid({"cost_model": [f"Unknown cost model {self.cost_model!r}."]})

    def with_law(self, law: str) -> PlanRequest:
        return PlanRequest(
            family=self.family, budget=self.budget, constraints=self.constraints, law=law, cost_model=self.cost_model
        )
