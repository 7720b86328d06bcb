"""Writes of the MLflow API: experiments, runs and what they log, and the Bitscale run each MLflow run maps to.

Every write to an MLflow run locks its row, so concurrent log calls of one run (MLflow's async logging) apply
one after the other. The Bitscale run is written through runs.services.runs_upsert, like any other post, as
soon as the run's n_params and n_tokens are known and again whenever the mapped payload changes, so refits
follow. A mapping problem never fails the MLflow call: it is recorded on the run (`mapping_error`).
"""

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction

from apikit import rows
from apikit.fields import float_or_word
from config import dispatch
from config.cache import cache_is_shared
from mlflow_compat import mapping
from mlflow_compat.errors import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, MlflowError
from mlflow_compat.models import ACTIVE, DELETED, Experiment, MlflowRun, PendingMetricPoint
from mlflow_compat.selectors import experiment_get, experiment_row, metric_value_decode, run_get
from runs.api.serializers import runs_validate
from runs.models import MAX_METRIC_POINTS_PER_RUN, MetricPoint, Run, Team
from runs.services import BatchInvalid, metric_points_append, runs_upsert

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_NAME = "Default"
PARENT_TAG = "mlflow.parentRunId"  # set by MLflow's client on a nested run
MAX_EXPERIMENT_NAME_LENGTH = 500


@dataclass(frozen=True)
class MetricInput:
    key: str
    value: float
    timestamp: int
    step: int


# Experiments ------------------------------------------------------------------------------------------------


def experiment_default(*, team: Team) -> Experiment:
    """The team's default experiment ("0", named "Default"), created on first use."""
    found = experiment_row(team=team, default=True)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Experiment.objects.create(team=team, name=DEFAULT_EXPERIMENT_NAME, is_default=True)
    except IntegrityError:  # a concurrent request created it first
        return Experiment.objects.get(team=team, is_default=True)


def experiment_create(*, team: Team, name: str, tags: Mapping[str, str]) -> Experiment:
    """A new experiment; RESOURCE_ALREADY_EXISTS when the team has one of that name (deleted ones included)."""
    if not name.strip():
        raise MlflowError(INVALID_PARAMETER_VALUE, "Invalid experiment name: ''. An experiment needs a name.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise MlflowError(
            INVALID_PARAMETER_VALUE, f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH}."
        )
    experiment_default(team=team)  # "Default" is taken from the start, as in MLflow
    try:
        with transaction.atomic():
            return Experiment.objects.create(team=team, name=name, tags=dict(tags))
    except IntegrityError:
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment '{name}' already exists.") from None


def experiment_set_tag(*, team: Team, experiment_id: str, key: str, value: str) -> None:
    """Set a tag of an experiment; `bitscale.family` and `bitscale.mapping` apply to its runs as they next log."""
    if experiment_id == "0":
        experiment_default(team=team)
    with transaction.atomic():
        experiment = experiment_get(team=team, experiment_id=experiment_id, for_update=True)
        experiment.tags = {**experiment.tags, key: value}
        experiment.save(update_fields=["tags", "updated_at"])


# Runs -------------------------------------------------------------------------------------------------------


def run_create(
    *, team: Team, experiment_id: str, run_name: str, start_time: int | None, tags: Mapping[str, str], user_id: str
) -> MlflowRun:
    """A new RUNNING run of the experiment; its Bitscale run follows once n_params and n_tokens are known."""
    experiment = (
        experiment_default(team=team)
        if experiment_id == "0"
        else experiment_get(team=team, experiment_id=experiment_id)
    )
    if experiment.lifecycle_stage != ACTIVE:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"The experiment {experiment_id} is deleted.")
    run_id = uuid.uuid4().hex
    name = run_name or tags.get("mlflow.runName") or f"run-{run_id[:8]}"
    with transaction.atomic():
        mlflow_run = MlflowRun(
            run_id=run_id,
            team=team,
            experiment=experiment,
            run_name=name[:250],
            user_id=user_id[:250],
            start_time=start_time,
            tags={**tags, "mlflow.runName": name},
        )
        rows.insert(mlflow_run)
        synced_fields = _sync(mlflow_run)
        if synced_fields:
            rows.update(mlflow_run, synced_fields)
    return mlflow_run


def run_log(
    *,
    team: Team,
    run_id: str,
    metrics: Sequence[MetricInput] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> MlflowRun:
    """Log metrics, params and tags to a run, all or nothing.

    A param keeps its first value: logging another raises INVALID_PARAMETER_VALUE and writes nothing (MLflow's
    rule). Every metric point goes to the history, up to MAX_METRIC_POINTS_PER_RUN per run; each key's latest
    point (highest step, then latest timestamp) is what the mapping reads.
    """
    params = params or {}
    tags = tags or {}
    with transaction.atomic():
        mlflow_run = run_get(team=team, run_id=run_id, for_update=True)
        _check_active(mlflow_run)
        for key, value in params.items():
            old = mlflow_run.params.get(key)
            if old is not None and old != value:
                raise MlflowError(
                    INVALID_PARAMETER_VALUE,
                    f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                    f"value='{old}' for run ID='{run_id}'. Attempted logging new value '{value}'.",
                )
        fields = ["updated_at"]
        if params:
            mlflow_run.params = {**mlflow_run.params, **params}
            fields.append("params")
        if tags:
            mlflow_run.tags = {**mlflow_run.tags, **tags}
            fields.append("tags")
            if "mlflow.runName" in tags:
                mlflow_run.run_name = tags["mlflow.runName"][:250]
                fields.append("run_name")
        if metrics:
            mlflow_run.metrics = _latest(mlflow_run.metrics, metrics)
            fields.append("metrics")
        if params or tags or mapping.metrics_matter({m.key for m in metrics}, mlflow_run.experiment.tags):
            fields += _sync(mlflow_run)  # may link the Bitscale run, which the history below then goes to
        if metrics:
            _history_append(mlflow_run, metrics)
            fields += ["history_points", "history_dropped"]
            _forecast_refresh_soon(mlflow_run.bitscale_run_id)
        rows.update(mlflow_run, fields)
    return mlflow_run


# A run's forecast is recomputed by a worker at most once per this many seconds of logging, this long after the
# first batch of the window, so it sees every batch of the window.
FORECAST_REFRESH_SECONDS = 1.0


def _forecast_refresh_soon(run_id: int | None) -> None:
    """After the commit, have a worker recompute the run's forecast into the shared cache (workers.refresh_forecast),
    so the next read of GET /runs/{id}/forecast/ is a cache hit: at most once per FORECAST_REFRESH_SECONDS per run
    (cache.add is the throttle), and only when the cache is shared (a per-process cache would keep the worker's
    answer to itself)."""
    if run_id is None or not cache_is_shared():
        return
    if cache.add(f"forecast-refresh:{run_id}", 1, timeout=FORECAST_REFRESH_SECONDS):
        transaction.on_commit(
            partial(dispatch.send, dispatch.REFRESH_FORECAST, run_id=run_id, countdown=FORECAST_REFRESH_SECONDS)
        )


def run_update(*, team: Team, run_id: str, status: str | None, end_time: int | None, run_name: str | None) -> MlflowRun:
    """Change a run's status, end time (its training date) or name; the Bitscale run follows."""
    with transaction.atomic():
        mlflow_run = run_get(team=team, run_id=run_id, for_update=True)
        _check_active(mlflow_run)
        fields = ["updated_at"]
        if status:
            mlflow_run.status = status
            fields.append("status")
        if end_time is not None:
            mlflow_run.end_time = end_time
            fields.append("end_time")
        if run_name:
            mlflow_run.run_name = run_name[:250]
            mlflow_run.tags = {**mlflow_run.tags, "mlflow.runName": run_name}
            fields += ["run_name", "tags"]
        fields += _sync(mlflow_run)
        rows.update(mlflow_run, fields)
    return mlflow_run


def run_delete(*, team: Team, run_id: str) -> None:
    """MLflow's soft delete: the run leaves searches and its Bitscale run is excluded from fits (kept, with a
    reason, so its history survives)."""
    with transaction.atomic():
        mlflow_run = run_get(team=team, run_id=run_id, for_update=True)
        mlflow_run.lifecycle_stage = DELETED
        rows.update(mlflow_run, ["lifecycle_stage", "updated_at", *_sync(mlflow_run)])


def _check_active(mlflow_run: MlflowRun) -> None:
    if mlflow_run.lifecycle_stage != ACTIVE:
        raise MlflowError(
            INVALID_PARAMETER_VALUE,
            f"The run {mlflow_run.run_id} must be in the 'active' state. Current state is "
            f"{mlflow_run.lifecycle_stage}.",
        )


def _latest(stored: Mapping[str, Any], metrics: Sequence[MetricInput]) -> dict[str, Any]:
    latest = dict(stored)
    for metric in metrics:
        current = latest.get(metric.key)
        if current is None or (metric.step, metric.timestamp) >= (current[2], current[1]):
            latest[metric.key] = [float_or_word(metric.value), metric.timestamp, metric.step]
    return latest


def _history_append(mlflow_run: MlflowRun, metrics: Sequence[MetricInput]) -> None:
    points = [(m.key, m.value, m.step, m.timestamp) for m in metrics]
    if mlflow_run.bitscale_run_id is not None:
        kept = metric_points_append(run_id=mlflow_run.bitscale_run_id, points=points, stored=mlflow_run.history_points)
    else:
        room = max(MAX_METRIC_POINTS_PER_RUN - mlflow_run.history_points, 0)
        PendingMetricPoint.objects.bulk_create(
            [
                PendingMetricPoint(
                    mlflow_run=mlflow_run, key=key, value=None if math.isnan(value) else value, step=step, timestamp=ts
                )
                for key, value, step, ts in points[:room]
            ]
        )
        kept = min(room, len(points))
    mlflow_run.history_points += kept
    mlflow_run.history_dropped += len(points) - kept  # the caller saves both counts


# The Bitscale run -------------------------------------------------------------------------------------------


def run_state(mlflow_run: MlflowRun) -> mapping.MlflowRunState:
    """What the mapping reads of a run (pure data)."""
    experiment = mlflow_run.experiment
    return mapping.MlflowRunState(
        run_id=mlflow_run.run_id,
        run_name=mlflow_run.run_name,
        status=mlflow_run.status,
        end_time=mlflow_run.end_time,
        deleted=mlflow_run.lifecycle_stage == DELETED,
        experiment_name=experiment.name,
        experiment_is_default=experiment.is_default,
        experiment_tags=experiment.tags,
        params=mlflow_run.params,
        tags=mlflow_run.tags,
        metrics={key: metric_value_decode(point[0]) for key, point in mlflow_run.metrics.items()},
    )


def _validated(payload: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    """The payload through the API's own field validation; a field that fails is left out with a note (and a run
    without its final loss cannot be finished). None when n_params or n_tokens fail."""
    for _ in range(3):
        items, errors = runs_validate([payload])
        if not errors:
            return items[0]
        failing: dict[str, Any] = errors["0"]
        for name, messages in failing.items():
            problems.append(f"{name}: {_flatten(messages)}")
            payload.pop(name, None)
        if any(name in failing for name in mapping.REQUIRED_FIELDS):
            return None
        if "final_loss" in failing:
            payload["final_loss"] = None  # explicitly: an earlier valid loss must not stay in place
            if payload.get("status") == "finished":
                payload["status"] = "running"
    return None


def _flatten(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_flatten(message) for message in messages)
    return str(messages)


def _sync(mlflow_run: MlflowRun) -> list[str]:
    """Write the Bitscale run of `mlflow_run` when its payload changed; record problems, never raise for them.

    Returns the fields of `mlflow_run` it changed, which the caller saves with its own changes (one UPDATE).
    """
    fields: list[str] = []
    state = run_state(mlflow_run)
    mapped = mapping.map_run(state)
    if mapped.payload is None and state.status in mapping.TERMINAL_STATUSES and _is_parent(mlflow_run):
        mapped = mapping.map_run(dataclasses.replace(state, is_parent=True))  # not a Bitscale run, and no error
    problems = list(mapped.problems)
    if mapped.payload is not None:
        payload = dict(mapped.payload)
        if mapped.trained_at is not None:  # the run's end time, checked by the API's rule like any other field
            payload["trained_at"] = mapped.trained_at
        item = _validated(payload, problems)
        if item is not None:
            changes = _changes(item, mlflow_run)
            if changes is not None:
                fields += _write(mlflow_run, changes, _plain(item), problems)
    error = "; ".join(problems)
    if error != mlflow_run.mapping_error:
        mlflow_run.mapping_error = error
        fields.append("mapping_error")
    return fields


def _is_parent(mlflow_run: MlflowRun) -> bool:
    """Whether a run of the same experiment names `mlflow_run` as its parent (MLflow's nested runs)."""
    children = MlflowRun.objects.filter(team=mlflow_run.team, experiment_id=mlflow_run.experiment_id)
    return children.filter(**{f"tags__{PARENT_TAG}": mlflow_run.run_id}).exists()


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """`item` as JSON data (a datetime as its ISO text), to store and compare."""
    plain: dict[str, Any] = json.loads(json.dumps(item, default=str))
    return plain


def _changes(item: dict[str, Any], mlflow_run: MlflowRun) -> dict[str, Any] | None:
    """What to write: all of `item` for a run not written yet, else only the fields and evaluations that differ
    from the last write (None when nothing does). Writing only changes keeps an edit made in Bitscale (the admin
    excluding the run, say) unless MLflow changes that same field, and keeps the update small."""
    synced = mlflow_run.synced
    if mlflow_run.bitscale_run_id is None or not synced:
        return item
    plain = _plain(item)
    changed = {name: item[name] for name, value in plain.items() if name != "evaluations" and synced.get(name) != value}
    old_evaluations = synced.get("evaluations") or []
    evaluations = [
        evaluation
        for evaluation, as_json in zip(item.get("evaluations") or [], plain.get("evaluations") or [], strict=True)
        if as_json not in old_evaluations
    ]
    if evaluations:
        changed["evaluations"] = evaluations
    if not changed:
        return None
    return {"external_id": item["external_id"], **changed}


def _write(mlflow_run: MlflowRun, item: dict[str, Any], synced: dict[str, Any], problems: list[str]) -> list[str]:
    """Write `item` through runs_upsert and link the Bitscale run; returns the fields of `mlflow_run` changed."""
    try:
        # runs_upsert writes inside its own transaction.atomic(), a savepoint within the MLflow call's
        # transaction: a refused write rolls back alone and the MLflow call still succeeds.
        result = runs_upsert(team=mlflow_run.team, items=[item], drop_refused_evaluations=True)
    except BatchInvalid as exc:
        problems.append(_flatten(exc.errors.get("0", exc.errors)))
        return []
    except (ValidationError, IntegrityError, DataError) as exc:
        logger.warning("MLflow run %s: Bitscale run not written: %s", mlflow_run.run_id, exc)
        problems.append(f"not written: {exc}")
        return []
    if result.refused_evaluations:
        # Only some evaluations are refused (e.g. at or above weight_bits): the run is written without them, and
        # they stay out of `synced`, so the next write tries them again (weight_bits may have changed by then).
        problems.append(_flatten({"evaluations": result.refused_evaluations}))
        refused = [
            _plain(e) for position, e in enumerate(item["evaluations"]) if str(position) in result.refused_evaluations
        ]
        synced = {**synced, "evaluations": [e for e in synced.get("evaluations") or [] if e not in refused]}
    run = result.runs[0]
    newly_linked = mlflow_run.bitscale_run_id != run.pk
    mlflow_run.bitscale_run = run
    mlflow_run.synced = synced
    if newly_linked and mlflow_run.history_points:  # no point logged yet: nothing to move
        _pending_move(mlflow_run, run)
        return ["bitscale_run", "synced", "history_points"]
    return ["bitscale_run", "synced"]


def _pending_move(mlflow_run: MlflowRun, run: Run) -> None:
    """Move the points logged before the Bitscale run existed into its history."""
    pending = list(
        PendingMetricPoint.objects.filter(mlflow_run=mlflow_run).values_list("key", "value", "step", "timestamp")
    )
    if pending:
        points = [(key, math.nan if value is None else value, step, ts) for key, value, step, ts in pending]
        metric_points_append(run_id=run.pk, points=points)
        PendingMetricPoint.objects.filter(mlflow_run=mlflow_run).delete()
    mlflow_run.history_points = MetricPoint.objects.filter(run=run).count()  # the caller saves it
