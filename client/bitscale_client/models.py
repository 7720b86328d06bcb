"""Typed results of the API: runs, bulk results, fits, predictions and plans.

Each type reads the contract's fields and keeps the whole answer in `raw`, so a field the server
adds later is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and None not in value:
        return (float(value[0]), float(value[1]))
    return None


@dataclass(frozen=True)
class Evaluation:
    """A post-training quantization of a run's final weights, and the loss it reached."""

    post_train_bits: float
    loss: float
    method: str = "rtn"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        return cls(post_train_bits=float(data["post_train_bits"]), loss=float(data["loss"]), method=data["method"])


@dataclass(frozen=True)
class Run:
    """One trained model as the server stores it."""

    id: int
    external_id: str | None
    family: str
    n_params: int
    n_tokens: int
    weight_bits: float
    activation_bits: float
    kv_bits: float
    final_loss: float | None
    status: str
    name: str = ""
    number_format: str = ""
    exponent_bits: int | None = None  # the floating-point format E and M, when the run reported one
    mantissa_bits: int | None = None
    excluded: bool = False
    evaluations: list[Evaluation] = field(default_factory=list)
    trained_at: str | None = None  # when training finished (ISO 8601, UTC); the server's default: registration
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(
            id=int(data["id"]),
            external_id=data.get("external_id"),
            family=data.get("family", "default"),
            n_params=int(data["n_params"]),
            n_tokens=int(data["n_tokens"]),
            weight_bits=float(data.get("weight_bits", 16)),
            activation_bits=float(data.get("activation_bits", 16)),
            kv_bits=float(data.get("kv_bits", 16)),
            final_loss=_float_or_none(data.get("final_loss")),
            status=data.get("status", "finished"),
            name=data.get("name") or "",
            number_format=data.get("number_format") or "",
            exponent_bits=data.get("exponent_bits"),
            mantissa_bits=data.get("mantissa_bits"),
            excluded=bool(data.get("excluded", False)),
            evaluations=[Evaluation.from_json(item) for item in data.get("evaluations") or []],
            trained_at=data.get("trained_at"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            raw=data,
        )


@dataclass(frozen=True)
class Spooled:
    """The server stayed unreachable: the payloads were saved to the spool, to be sent by `Client.sync()`."""

    path: Path
    external_ids: list[str]

    @property
    def count(self) -> int:
        return len(self.external_ids)


@dataclass
class BulkResult:
    """What `log_runs` did over all its batches; `ids` are in input order for the runs that reached the server."""

    created: int = 0
    updated: int = 0
    ids: list[int] = field(default_factory=list)
    spooled: Spooled | None = None

    @property
    def sent(self) -> int:
        return len(self.ids)


@dataclass
class SyncResult:
    """What `Client.sync()` did: runs the server acknowledged, runs still spooled, runs it refused."""

    uploaded: int = 0
    remaining: int = 0
    rejected: int = 0
    created: int = 0
    updated: int = 0
    rejected_path: Path | None = None
    errors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fit:
    """One version of one law fitted to one family; `stale` and `pending` come with the current fit."""

    id: int
    family: str
    law: str
    version: int
    status: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    metrics: dict[str, Any]
    backtest: dict[str, Any] | None
    warnings: list[str]
    fixed: dict[str, Any]
    stale: bool
    pending: Any
    created_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Runs the fit's screening rule left out (run_id, residual, reason, ...); servers before the rule send none.
    screened: list[dict[str, Any]] = field(default_factory=list)
    objective: str = ""
    # The fit's verdict (good, weak, unusable) and its reasons; servers before verdicts send none.
    quality: str = ""
    quality_reasons: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fit:
        intervals = {name: _interval(value) for name, value in (data.get("intervals") or {}).items()}
        return cls(
            id=int(data["id"]),
            family=data.get("family", ""),
            law=data.get("law", ""),
            version=int(data.get("version", 0)),
            status=data.get("status", ""),
            params={name: float(value) for name, value in (data.get("params") or {}).items() if value is not None},
            intervals={name: value for name, value in intervals.items() if value is not None},
            metrics=data.get("metrics") or {},
            backtest=data.get("backtest"),
            warnings=list(data.get("warnings") or []),
            fixed=data.get("fixed") or {},
            stale=bool(data.get("stale", False)),
            pending=data.get("pending"),
            created_at=data.get("created_at"),
            raw=data,
            screened=[dict(entry) for entry in data.get("screened") or []],
            objective=data.get("objective") or "",
            quality=data.get("quality") or "",
            quality_reasons=[str(r) for r in data.get("quality_reasons") or []],
        )


@dataclass(frozen=True)
class Prediction:
    """The current fit's predicted loss for one configuration, with its 95% interval."""

    loss: float
    interval: tuple[float, float] | None
    fit_id: int | None
    extrapolation: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            loss=float(data["loss"]),
            interval=_interval(data.get("interval")),
            fit_id=data.get("fit_id"),
            extrapolation=data.get("extrapolation") or {},
            raw=data,
        )


@dataclass(frozen=True)
class PlanConfig:
    """One training configuration of a plan: size, tokens, precisions and what the law predicts for it."""

    n_params: float | None
    n_tokens: float | None
    tokens_per_param: float | None
    weight_bits: float | None
    activation_bits: float | None
    kv_bits: float | None
    post_train_bits: float | None
    predicted_loss: float | None
    predicted_loss_interval: tuple[float, float] | None
    compute_flops: float | None
    weights_memory_bytes: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PlanConfig:
        data = data or {}
        number = {
            name: _float_or_none(data.get(name))
            for name in (
                "n_params",
                "n_tokens",
                "tokens_per_param",
                "weight_bits",
                "activation_bits",
                "kv_bits",
                "post_train_bits",
                "compute_flops",
                "weights_memory_bytes",
            )
        }
        loss = data.get("predicted_loss", data.get("loss"))  # the baseline may name it plainly
        interval = data.get("predicted_loss_interval", data.get("interval"))
        return cls(
            **number,
            predicted_loss=_float_or_none(loss),
            predicted_loss_interval=_interval(interval),
            raw=data,
        )


@dataclass(frozen=True)
class Plan:
    """A stored plan: the recommendation, the 16-bit baseline at the same budget, alternatives and warnings."""

    id: int | None
    family: str
    law: str
    budget: dict[str, Any]
    recommendation: PlanConfig
    baseline: PlanConfig | None
    alternatives: list[PlanConfig]
    optimum_spread: dict[str, Any]
    fit: dict[str, Any]
    warnings: list[str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            id=data.get("id"),
            family=data.get("family", ""),
            law=data.get("law", ""),
            budget=data.get("budget") or {},
            recommendation=PlanConfig.from_json(data.get("recommendation")),
            baseline=PlanConfig.from_json(data["baseline"]) if data.get("baseline") else None,
            alternatives=[PlanConfig.from_json(item) for item in data.get("alternatives") or []],
            optimum_spread=data.get("optimum_spread") or {},
            fit=data.get("fit") or {},
            warnings=[str(item) for item in data.get("warnings") or []],
            raw=data,
        )
