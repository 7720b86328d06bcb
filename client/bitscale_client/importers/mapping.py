"""The mapping file: which tracker params and metrics become which Bitscale run fields.

A mapping is JSON (no extra dependency), for example:

    {
      "family": "gpt-sweep",
      "fields": {
        "n_params": "params.model_params",
        "n_tokens": {"source": "params.tokens_billions", "scale": 1e9},
        "weight_bits": "params.train_bits",
        "final_loss": "metrics.val_loss"
      },
      "constants": {"dataset": "c4", "eval_set": "c4-val"},
      "evaluations": [
        {"source": "metrics.ptq_loss_gptq_3bit", "post_train_bits": 3, "method": "gptq"},
        {"pattern": "metrics.ptq_loss_(?P<bits>[0-9.]+)bit", "method": "rtn"}
      ]
    }

Sources name a key of the tracker's flattened record: `params.<name>` / `metrics.<name>` (MLflow),
`config.<name>` / `summary.<name>` (W&B, nested keys joined with dots), or the bare `<name>`,
which finds a metric/summary value first, then a param/config value. A `pattern` is a regular
expression over those keys whose `bits` group (or first group) is the evaluation's
`post_train_bits`. `family` may also be a source in `fields`; otherwise the importer's `--family`
or the mapping's `family` applies.

`trained_at` (when training finished) comes from the tracker's own times: MLflow's run end time, W&B's
run end (`_timestamp` of the last log, else the heartbeat, else the created time plus the runtime); a
running run gets none, so the server dates it at registration. Mapping `trained_at` to a source takes that
instead: Unix seconds (milliseconds above 1e11, as MLflow stores them) or ISO 8601 (naive is UTC).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

INT_FIELDS = frozenset(
    {
        "n_params",
        "n_tokens",
        "exponent_bits",
        "mantissa_bits",
        "n_layers",
        "d_model",
        "n_heads",
        "n_kv_heads",
        "seq_len",
    }
)
FLOAT_FIELDS = frozenset({"weight_bits", "activation_bits", "kv_bits", "final_loss"})
TEXT_FIELDS = frozenset(
    {"name", "family", "param_count", "number_format", "status", "dataset", "eval_set", "exclusion_reason"}
)
BOOL_FIELDS = frozenset({"excluded"})
TIME_FIELDS = frozenset({"trained_at"})
MAPPABLE_FIELDS = INT_FIELDS | FLOAT_FIELDS | TEXT_FIELDS | BOOL_FIELDS | TIME_FIELDS
MILLISECONDS_ABOVE = 1e11  # a Unix time above this is in milliseconds: 1e11 seconds is the year 5138
REQUIRED_FIELDS = ("n_params", "n_tokens")


class MappingError(ValueError):
    """The mapping file is malformed, or a tracker value cannot be converted to its Bitscale field."""


@dataclass(frozen=True)
class TrackerRun:
    """One run of a tracker, flattened: `values` maps source names (`params.lr`, `metrics.loss`, `lr`) to values."""

    source: str  # "wandb" or "mlflow"
    run_id: str
    name: str
    state: str  # the tracker's own status word
    values: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    # The tracker's times, as found: "end" (when the run ended), "created" (when it started), "runtime" (seconds).
    times: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldSource:
    source: str
    scale: float = 1.0


@dataclass(frozen=True)
class EvaluationSource:
    method: str
    source: str | None = None
    pattern: re.Pattern[str] | None = None
    post_train_bits: float | None = None


# The trackers' run states, as Bitscale statuses. Unknown states count as failed: they never enter fits.
STATES = {
    "finished": "finished",
    "failed": "failed",
    "crashed": "failed",
    "killed": "failed",
    "running": "running",
    "scheduled": "running",
    "diverged": "diverged",
}


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file."""

    fields: dict[str, FieldSource]
    evaluations: list[EvaluationSource] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    family: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Mapping:
        if not isinstance(data, dict):
            raise MappingError("a mapping is a JSON object with `fields` (and optionally `evaluations`, `constants`)")
        unknown_keys = set(data) - {"fields", "evaluations", "constants", "family"}
        if unknown_keys:
            raise MappingError(f"unknown key(s) in mapping: {', '.join(sorted(unknown_keys))}")
        fields: dict[str, FieldSource] = {}
        for name, spec in (data.get("fields") or {}).items():
            if name not in MAPPABLE_FIELDS:
                raise MappingError(f"fields.{name}: not a Bitscale run field ({', '.join(sorted(MAPPABLE_FIELDS))})")
            if isinstance(spec, str):
                fields[name] = FieldSource(spec)
            elif isinstance(spec, dict) and isinstance(spec.get("source"), str):
                fields[name] = FieldSource(spec["source"], float(spec.get("scale", 1.0)))
            else:
                raise MappingError(f"fields.{name}: expected a source name or {{'source': ..., 'scale': ...}}")
        evaluations: list[EvaluationSource] = []
        for position, spec in enumerate(data.get("evaluations") or []):
            where = f"evaluations[{position}]"
            if not isinstance(spec, dict):
                raise MappingError(f"{where}: expected an object")
            method = str(spec.get("method", "rtn"))
            if "pattern" in spec:
                try:
                    pattern = re.compile(spec["pattern"])
                except re.error as exc:
                    raise MappingError(f"{where}.pattern: {exc}") from None
                if pattern.groups < 1:
                    raise MappingError(f"{where}.pattern: needs a group capturing the bits, e.g. (?P<bits>[0-9.]+)")
                evaluations.append(EvaluationSource(method=method, pattern=pattern))
            elif "source" in spec and "post_train_bits" in spec:
                bits = float(spec["post_train_bits"])
                evaluations.append(EvaluationSource(method=method, source=str(spec["source"]), post_train_bits=bits))
            else:
                raise MappingError(f"{where}: give `source` and `post_train_bits`, or a `pattern`")
        constants = data.get("constants") or {}
        if not isinstance(constants, dict):
            raise MappingError("constants: expected an object")
        return cls(fields=fields, evaluations=evaluations, constants=constants, family=data.get("family"))

    def to_payload(self, run: TrackerRun, *, family: str | None = None) -> dict[str, Any]:
        """The Bitscale payload for one tracker run; raises MappingError naming what is missing or unreadable."""
        payload: dict[str, Any] = {"external_id": f"{run.source}-{run.run_id}"}
        if run.name:
            payload["name"] = run.name[:200]
        payload["status"] = STATES.get(run.state.lower(), "failed") if run.state else "finished"
        if payload["status"] != "running":  # a running run has not finished training
            try:
                ended = end_time(run.times)
            except (TypeError, ValueError, OverflowError, OSError) as exc:
                raise MappingError(f"trained_at: cannot read the run's times {run.times}: {exc}") from None
            if ended is not None:
                payload["trained_at"] = ended
        payload.update(self.constants)
        for name, spec in self.fields.items():
            value = _lookup(run.values, spec.source)
            if value is not None:
                payload[name] = _convert(name, value, spec.scale)
        chosen_family = family or payload.get("family") or self.family
        if chosen_family:
            payload["family"] = chosen_family
        missing = [name for name in REQUIRED_FIELDS if name not in payload]
        if missing:
            sources = ", ".join(f"{name} <- {self.fields[name].source}" for name in missing if name in self.fields)
            raise MappingError(f"missing {', '.join(missing)}" + (f" ({sources})" if sources else " (not mapped)"))
        if payload["status"] == "finished" and "final_loss" not in payload:
            where = f" ({self.fields['final_loss'].source})" if "final_loss" in self.fields else " (not mapped)"
            raise MappingError(f"finished but no final_loss{where}")
        evaluations = self._evaluations(run.values)
        if evaluations:
            payload["evaluations"] = evaluations
        payload["metadata"] = {**run.metadata, "imported_from": run.source, f"{run.source}_run_id": run.run_id}
        return payload

    def _evaluations(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        found: dict[tuple[float, str], float] = {}
        for spec in self.evaluations:
            if spec.source is not None and spec.post_train_bits is not None:
                loss = _lookup(values, spec.source)
                if loss is not None:
                    found[(spec.post_train_bits, spec.method)] = _convert("final_loss", loss, 1.0)
            elif spec.pattern is not None:
                for key, loss in values.items():
                    match = spec.pattern.fullmatch(key)
                    if match is None or _missing(loss):
                        continue
                    raw_bits = match.groupdict().get("bits") or match.group(1)
                    found.setdefault((float(raw_bits), spec.method), _convert("final_loss", loss, 1.0))
        return [{"post_train_bits": bits, "method": method, "loss": loss} for (bits, method), loss in found.items()]


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _lookup(values: dict[str, Any], source: str) -> Any:
    value = values.get(source)
    return None if _missing(value) else value


def _convert(name: str, value: Any, scale: float) -> Any:
    try:
        if name in INT_FIELDS:
            number = float(value) * scale
            if not number.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            return int(number)
        if name in FLOAT_FIELDS:
            return float(value) * scale
        if name in BOOL_FIELDS:
            return str(value).strip().lower() in {"1", "true", "yes"}
        if name in TIME_FIELDS:
            return _iso(_moment(value))
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MappingError(f"{name}: cannot read {value!r}: {exc}") from None
    return str(value)


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a JSON mapping file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MappingError(f"{path}: {exc}") from None
    return Mapping.from_json(data)


def flatten(prefix: str, data: Any, into: dict[str, Any]) -> None:
    """Nested dicts as dotted keys: {"model": {"size": 1}} under "config" -> {"config.model.size": 1}."""
    if isinstance(data, dict):
        for key, value in data.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), value, into)
    else:
        into[prefix] = data


def tracker_values(
    params: dict[str, Any], metrics: dict[str, Any], *, params_name: str, metrics_name: str
) -> dict[str, Any]:
    """The lookup table of one run: prefixed keys, then bare keys (metrics win over params on a clash)."""
    values: dict[str, Any] = {}
    flat_params: dict[str, Any] = {}
    flat_metrics: dict[str, Any] = {}
    flatten("", params, flat_params)
    flatten("", metrics, flat_metrics)
    values.update(flat_params)
    values.update(flat_metrics)
    values.update({f"{params_name}.{key}": value for key, value in flat_params.items()})
    values.update({f"{metrics_name}.{key}": value for key, value in flat_metrics.items()})
    return values


def _moment(value: Any) -> datetime:
    """A tracker's time: Unix seconds (milliseconds above MILLISECONDS_ABOVE) or ISO 8601 (naive is UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        moment = datetime.fromisoformat(str(value).strip())
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a time")
    return datetime.fromtimestamp(seconds / 1000 if seconds > MILLISECONDS_ABOVE else seconds, UTC)


def _iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def end_time(times: dict[str, Any]) -> str | None:
    """When a tracker run finished, ISO 8601 in UTC: its end time, else its created time plus its runtime
    (the created time alone when the runtime is unknown); None when the tracker gave neither."""
    if not _missing(times.get("end")):
        return _iso(_moment(times["end"]))
    if _missing(times.get("created")):
        return None
    start = _moment(times["created"])
    try:
        runtime = float(times.get("runtime"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        runtime = 0.0
    return _iso(start + timedelta(seconds=runtime if math.isfinite(runtime) and runtime > 0 else 0.0))
