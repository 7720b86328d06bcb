"""How an MLflow run becomes a Bitscale run: pure functions over the run's params, tags and metrics, no Django.

The conventions (docs/mlflow.md):
- family: a `bitscale.family` tag of the run, else of the experiment, else the team mapping's family, else the
  experiment's name as a slug; the default experiment ("0", "Default") is family `default`.
- fields: a param named as the Bitscale field (`n_params`, `n_tokens`, `weight_bits`, ...), where a param or tag
  `bitscale.<field>` wins. MLflow sends every param as a string: "1.1e8" and "110000000.0" read as 110000000.
- `final_loss`: the metric `final_loss` at its highest step; `ptq_loss/<bits>` (method rtn) and
  `ptq_loss/<method>/<bits>` are PTQ evaluations.
- status: RUNNING/SCHEDULED -> running; FINISHED -> finished, but running (with a note) while there is no final
  loss; a NaN or infinite final loss -> diverged; FAILED/KILLED -> failed. A deleted run is excluded from fits.
- the run's end time is its training date; other params and tags go to `metadata`.

A team keeps its own names with the MLflow importer's mapping format (client/bitscale_client/importers/mapping.py),
given as JSON in the experiment tag `bitscale.mapping`. The server reads that format itself rather than importing
the client package, which the server does not depend on; tests/mlflow_compat/test_mapping.py checks that both read
the same mapping into the same fields.

Problems never raise: each becomes a note, and the payload carries what could be read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from runs.schedules import SCHEDULE_FIELDS, schedule_clean

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
MAPPABLE_FIELDS = INT_FIELDS | FLOAT_FIELDS | TEXT_FIELDS | BOOL_FIELDS
# Fields read from params by convention; name, family, final_loss and status have rules of their own.
PARAM_FIELDS = MAPPABLE_FIELDS - {"name", "family", "final_loss", "status"}
REQUIRED_FIELDS = ("n_params", "n_tokens")

PREFIX = "bitscale."
FAMILY_TAG = "bitscale.family"
MAPPING_TAG = "bitscale.mapping"
FINAL_LOSS_METRIC = "final_loss"
PTQ_PATTERN = re.compile(r"ptq_loss/(?:(?P<method>[-a-zA-Z0-9_]+)/)?(?P<bits>[0-9]+(?:\.[0-9]+)?)")
DEFAULT_FAMILY = "default"
MAX_FAMILY_LENGTH = 100
METADATA_MAX_BYTES = 60_000  # below the run's 64 KiB metadata limit, leaving room for the keys Bitscale adds
TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
DELETED_REASON = "Deleted through the MLflow API."


@dataclass(frozen=True)
class MlflowRunState:
    """Everything the mapping reads of one MLflow run; `metrics` holds each key's latest value."""

    run_id: str
    run_name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED or KILLED
    end_time: int | None  # milliseconds since the epoch
    deleted: bool
    experiment_name: str
    experiment_is_default: bool
    experiment_tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    # Other runs name this one as their parent (tag mlflow.parentRunId): the parent of a nested sweep, which has
    # no size of its own; its nested runs are the Bitscale runs.
    is_parent: bool = False


@dataclass(frozen=True)
class Mapped:
    """The Bitscale run payload (None until n_params and n_tokens are known), its training date, and the notes."""

    payload: dict[str, Any] | None
    trained_at: datetime | None
    problems: list[str]


# The team mapping (the importer's format) ------------------------------------------------------------------


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


@dataclass(frozen=True)
class TeamMapping:
    """A parsed mapping: the same JSON the `bitscale import-mlflow` command reads."""

    fields: dict[str, FieldSource] = field(default_factory=dict)
    evaluations: list[EvaluationSource] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    family: str | None = None


class MappingInvalid(ValueError):
    """A mapping that is not in the importer's format; the message names the offending key."""


def parse_team_mapping(data: Any) -> TeamMapping:
    """Read the importer's mapping format; raises MappingInvalid naming what is wrong."""
    if not isinstance(data, dict):
        raise MappingInvalid("a mapping is a JSON object with `fields` (and optionally `evaluations`, `constants`)")
    unknown_keys = set(data) - {"fields", "evaluations", "constants", "family"}
    if unknown_keys:
        raise MappingInvalid(f"unknown key(s) in mapping: {', '.join(sorted(unknown_keys))}")
    fields: dict[str, FieldSource] = {}
    for name, spec in (data.get("fields") or {}).items():
        if name not in MAPPABLE_FIELDS:
            raise MappingInvalid(f"fields.{name}: not a Bitscale run field ({', '.join(sorted(MAPPABLE_FIELDS))})")
        if isinstance(spec, str):
            fields[name] = FieldSource(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("source"), str):
            try:
                fields[name] = FieldSource(spec["source"], float(spec.get("scale", 1.0)))
            except (TypeError, ValueError):
                raise MappingInvalid(f"fields.{name}.scale: expected a number") from None
        else:
            raise MappingInvalid(f"fields.{name}: expected a source name or {{'source': ..., 'scale': ...}}")
    evaluations: list[EvaluationSource] = []
    for position, spec in enumerate(data.get("evaluations") or []):
        where = f"evaluations[{position}]"
        if not isinstance(spec, dict):
            raise MappingInvalid(f"{where}: expected an object")
        method = str(spec.get("method", "rtn"))
        if "pattern" in spec:
            try:
                pattern = re.compile(spec["pattern"])
            except (re.error, TypeError) as exc:
                raise MappingInvalid(f"{where}.pattern: {exc}") from None
            if pattern.groups < 1:
                raise MappingInvalid(f"{where}.pattern: needs a group capturing the bits, e.g. (?P<bits>[0-9.]+)")
            evaluations.append(EvaluationSource(method=method, pattern=pattern))
        elif "source" in spec and "post_train_bits" in spec:
            try:
                bits = float(spec["post_train_bits"])
            except (TypeError, ValueError):
                raise MappingInvalid(f"{where}.post_train_bits: expected a number") from None
            evaluations.append(EvaluationSource(method=method, source=str(spec["source"]), post_train_bits=bits))
        else:
            raise MappingInvalid(f"{where}: give `source` and `post_train_bits`, or a `pattern`")
    constants = data.get("constants") or {}
    if not isinstance(constants, dict):
        raise MappingInvalid("constants: expected an object")
    family = data.get("family")
    return TeamMapping(fields=fields, evaluations=evaluations, constants=constants, family=family)


# Reading values ---------------------------------------------------------------------------------------------


def slugify_family(name: str) -> str:
    """An experiment name as a family slug: "GPT Sweep/v2" -> "gpt-sweep-v2"; empty -> "default"."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:MAX_FAMILY_LENGTH].strip("-_")
    return slug or DEFAULT_FAMILY


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def convert(name: str, value: Any, scale: float = 1.0) -> Any:
    """A param's text (or a metric's float) as the Bitscale field's type; raises ValueError saying why not."""
    if name in INT_FIELDS:
        try:
            number = Decimal(str(value).strip()) * Decimal(repr(scale))
        except InvalidOperation:
            raise ValueError(f"cannot read {value!r} as a whole number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"cannot read {value!r} as a whole number")
        return int(number)
    if name in FLOAT_FIELDS:
        try:
            return float(value) * scale
        except (TypeError, ValueError):
            raise ValueError(f"cannot read {value!r} as a number") from None
    if name in BOOL_FIELDS:
        text = str(value).strip().lower()
        if text in {"1", "true", "yes"}:
            return True
        if text in {"0", "false", "no", ""}:
            return False
        raise ValueError(f"cannot read {value!r} as true or false")
    return str(value)


def lookup_table(state: MlflowRunState) -> dict[str, Any]:
    """The mapping's sources: `params.<k>`, `metrics.<k>`, `tags.<k>` and bare `<k>` (a metric before a param)."""
    values: dict[str, Any] = {}
    values.update(state.params)
    values.update(state.metrics)
    values.update({f"params.{key}": value for key, value in state.params.items()})
    values.update({f"metrics.{key}": value for key, value in state.metrics.items()})
    values.update({f"tags.{key}": value for key, value in state.tags.items()})
    return values


def training_date(end_time: int | None) -> datetime | None:
    """The run's end time (ms since the epoch) as an aware datetime: the run's training date."""
    if end_time is None or end_time <= 0:
        return None
    try:
        return datetime.fromtimestamp(end_time / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# The mapping ------------------------------------------------------------------------------------------------


def metrics_matter(keys: Iterable[str], experiment_tags: Mapping[str, str]) -> bool:
    """Whether logging metrics `keys` can change the mapped run: a final loss, a PTQ loss, or any metric when a
    team mapping may read it. A training curve alone (loss, lr, grad_norm, ...) changes nothing."""
    if experiment_tags.get(MAPPING_TAG):
        return True
    return any(key == FINAL_LOSS_METRIC or PTQ_PATTERN.fullmatch(key) is not None for key in keys)


def team_mapping_of(state: MlflowRunState, problems: list[str]) -> TeamMapping | None:
    text = state.experiment_tags.get(MAPPING_TAG)
    if not text:
        return None
    try:
        return parse_team_mapping(json.loads(text))
    except (ValueError, MappingInvalid) as exc:  # json's errors are ValueErrors
        problems.append(f"experiment tag {MAPPING_TAG} ignored: {exc}")
        return None


def map_run(state: MlflowRunState) -> Mapped:
    """The Bitscale payload of an MLflow run, as runs.services.runs_upsert takes it (before field validation)."""
    problems: list[str] = []
    mapping = team_mapping_of(state, problems)
    values = lookup_table(state)
    used_params: set[str] = set()
    payload: dict[str, Any] = {"external_id": f"mlflow-{state.run_id}"}
    if state.run_name:
        payload["name"] = state.run_name[:200]
    if mapping is not None:
        payload.update({key: value for key, value in mapping.constants.items() if key in MAPPABLE_FIELDS})

    for name in sorted(PARAM_FIELDS):
        for where, key in (("tag", PREFIX + name), ("param", PREFIX + name), ("param", name)):
            source = state.tags if where == "tag" else state.params
            if key in source and not _missing(source[key]):
                if where == "param":
                    used_params.add(key)
                try:
                    payload[name] = convert(name, source[key])
                except ValueError as exc:
                    problems.append(f"{where} {key}: {exc}")
                break

    final_loss = state.metrics.get(FINAL_LOSS_METRIC)
    if mapping is not None:
        for name, spec in mapping.fields.items():
            value: Any = values.get(spec.source)
            if _missing(value):
                continue
            if spec.source.startswith("params."):
                used_params.add(spec.source.removeprefix("params."))
            elif spec.source in state.params and spec.source not in state.metrics:
                used_params.add(spec.source)
            if name == "final_loss":
                try:
                    final_loss = float(value) * spec.scale
                except (TypeError, ValueError):
                    problems.append(f"final_loss <- {spec.source}: cannot read {value!r} as a number")
                continue
            try:
                payload[name] = convert(name, value, spec.scale)
            except ValueError as exc:
                problems.append(f"{name} <- {spec.source}: {exc}")

    payload["family"] = _family(state, mapping, payload.get("family"))
    _status(state, payload, final_loss, problems)
    evaluations = _evaluations(state, mapping, values, problems)
    if evaluations:
        payload["evaluations"] = evaluations
    schedule = _schedule(state, used_params, problems)
    if schedule is not None:
        payload["schedule"] = schedule
    payload["metadata"] = _metadata(state, used_params, problems)

    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing and state.is_parent:
        return Mapped(payload=None, trained_at=None, problems=[])  # not a Bitscale run: nothing to report
    if missing:
        if state.status in TERMINAL_STATUSES:
            problems.append(
                f"no {' or '.join(missing)}: log them as params (e.g. mlflow.log_param('n_params', 1.1e8)) "
                "for this run to become a Bitscale run"
            )
        return Mapped(payload=None, trained_at=None, problems=problems)
    return Mapped(payload=payload, trained_at=training_date(state.end_time), problems=problems)


def _family(state: MlflowRunState, mapping: TeamMapping | None, mapped: Any) -> str:
    explicit = state.tags.get(FAMILY_TAG) or state.experiment_tags.get(FAMILY_TAG)
    if explicit:
        return str(explicit)
    if mapped:
        return str(mapped)
    if mapping is not None and mapping.family:
        return str(mapping.family)
    if state.experiment_is_default:
        return DEFAULT_FAMILY
    return slugify_family(state.experiment_name)


def _status(state: MlflowRunState, payload: dict[str, Any], final_loss: float | None, problems: list[str]) -> None:
    status = state.status.upper()
    if status in {"FAILED", "KILLED"}:
        payload["status"] = "failed"
    elif final_loss is not None and not math.isfinite(final_loss):
        payload["status"] = "diverged"
        problems.append(f"final_loss is {final_loss}: the run diverged")
    elif status == "FINISHED" and final_loss is None:
        payload["status"] = "running"
        problems.append(f"FINISHED without a {FINAL_LOSS_METRIC} metric: kept as running")
    else:
        payload["status"] = "finished" if status == "FINISHED" else "running"
    # Always sent, None included: an update writes only the fields it carries, and a loss that became NaN must
    # not leave the previous finite one in place.
    payload["final_loss"] = final_loss if final_loss is not None and math.isfinite(final_loss) else None
    if state.deleted:
        payload["excluded"] = True
        payload["exclusion_reason"] = DELETED_REASON


def _evaluations(
    state: MlflowRunState, mapping: TeamMapping | None, values: Mapping[str, Any], problems: list[str]
) -> list[dict[str, Any]]:
    found: dict[tuple[float, str], float] = {}

    def add(bits: float, method: str, loss: Any, where: str) -> None:
        try:
            value = float(loss)
        except (TypeError, ValueError):
            problems.append(f"{where}: cannot read {loss!r} as a loss")
            return
        if not math.isfinite(value):
            problems.append(f"{where}: {value} is not a loss; evaluation left out")
            return
        found.setdefault((bits, method), value)

    if mapping is not None:
        for spec in mapping.evaluations:
            if spec.source is not None and spec.post_train_bits is not None:
                loss = values.get(spec.source)
                if not _missing(loss):
                    add(spec.post_train_bits, spec.method, loss, spec.source)
            elif spec.pattern is not None:
                for key, loss in values.items():
                    match = spec.pattern.fullmatch(key)
                    if match is None or _missing(loss):
                        continue
                    raw_bits = match.groupdict().get("bits") or match.group(1)
                    try:
                        add(float(raw_bits), spec.method, loss, key)
                    except ValueError:
                        problems.append(f"{key}: cannot read {raw_bits!r} as bits")
    for key, loss in state.metrics.items():
        match = PTQ_PATTERN.fullmatch(key)
        if match is not None:
            add(float(match["bits"]), match["method"] or "rtn", loss, f"metric {key}")
    return [{"post_train_bits": bits, "method": method, "loss": loss} for (bits, method), loss in sorted(found.items())]


# The schedule's integer fields; lr_schedule is text, the rest are numbers.
SCHEDULE_INT_FIELDS = frozenset({"total_steps", "warmup_steps", "decay_start"})


def _schedule(state: MlflowRunState, used_params: set[str], problems: list[str]) -> dict[str, Any] | None:
    """The run's described schedule from params named as its fields (`total_steps`, `peak_lr`, `warmup_steps`,
    `lr_schedule`, `decay_start`, `final_lr`, `tokens_per_step`; a `bitscale.<field>` tag or param wins), or None
    when the run logs neither total_steps nor peak_lr. A schedule that does not validate is a note, and not sent:
    the run's other fields still land. The logged `lr` metric is the schedule's past (docs/mlflow.md)."""
    raw: dict[str, Any] = {}
    for name in SCHEDULE_FIELDS:
        for where, key in (("tag", PREFIX + name), ("param", PREFIX + name), ("param", name)):
            source = state.tags if where == "tag" else state.params
            if key in source and not _missing(source[key]):
                if where == "param":
                    used_params.add(key)
                text = str(source[key]).strip()
                if name == "lr_schedule":
                    raw[name] = text.lower()
                    break
                try:
                    number = float(text)
                except ValueError:
                    problems.append(f"{where} {key}: cannot read {text!r} as a number")
                    break
                raw[name] = int(number) if name in SCHEDULE_INT_FIELDS and number.is_integer() else number
                break
    if "total_steps" not in raw and "peak_lr" not in raw:
        return None
    cleaned, errors = schedule_clean(raw)
    if errors:
        detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in sorted(errors.items()))
        problems.append(f"schedule not stored ({detail})")
        return None
    return cleaned


def _metadata(state: MlflowRunState, used_params: set[str], problems: list[str]) -> dict[str, Any]:
    params = {key: value for key, value in state.params.items() if key not in used_params}
    tags = {
        key: value for key, value in state.tags.items() if not key.startswith(("mlflow.", PREFIX)) and key not in params
    }
    metadata: dict[str, Any] = {
        "imported_from": "mlflow",
        "mlflow_run_id": state.run_id,
        "mlflow_experiment": state.experiment_name,
    }
    if params:
        metadata["mlflow_params"] = params
    if tags:
        metadata["mlflow_tags"] = tags
    if len(json.dumps(metadata).encode()) > METADATA_MAX_BYTES:
        metadata.pop("mlflow_params", None)
        metadata.pop("mlflow_tags", None)
        metadata["mlflow_metadata_truncated"] = True
        problems.append(f"params and tags exceed {METADATA_MAX_BYTES} bytes: left out of metadata")
    return metadata
