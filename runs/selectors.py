"""Reads of runs, evaluations and keys; every selector over team data takes the acting team."""

import functools
import hmac
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db.models import Count, Max, QuerySet

from apikit import rows
from runs.density import DensityConstants, effective_params_16bit
from runs.models import RUN_FIELDS, ApiKey, DensityReference, MetricPoint, Run, Team, api_key_digest


@functools.cache
def _api_key_sql() -> str:
    key, team = rows.table(ApiKey), rows.table(Team)
    return (
        f"SELECT {rows.select_list(ApiKey, 'k')}, {rows.select_list(Team, 't')} FROM {key} k "  # noqa: S608
        f"JOIN {team} t ON t.id = k.team_id WHERE k.digest = %s AND k.revoked_at IS NULL"
    )


def api_key_get_active(*, secret: str) -> ApiKey | None:
    """The unrevoked key whose sha256 matches `secret`, with its team; None when there is none.

    Every API request runs this, so it is one statement written as SQL (apikit.rows), not an ORM query compiled
    anew each time; `revoked_at` is read on every request, so a revoked key is refused at once by every process.
    """
    digest = api_key_digest(secret)
    with rows.cursor() as cursor:
        cursor.execute(_api_key_sql(), [digest])
        row = cursor.fetchone()
    key = None
    if row is not None:
        width = rows.width(ApiKey)
        key = rows.instance(ApiKey, row[:width])
        key.team = rows.instance(Team, row[width:])
    # The lookup is by digest; compare again in constant time so no timing difference depends on the secret.
    if key is None or not hmac.compare_digest(key.digest, digest):
        return None
    return key


def run_list(*, team: Team) -> QuerySet[Run]:
    """The team's runs with their evaluations, newest first."""
    return Run.objects.filter(team=team).prefetch_related("evaluations")


def family_list(*, team: Team) -> list[dict[str, Any]]:
    """One row per family of the team: run and evaluation counts and the time of the newest run."""
    rows = (
        Run.objects.filter(team=team)
        .values("family")
        .annotate(runs=Count("id", distinct=True), n_evaluations=Count("evaluations"), last_run_at=Max("created_at"))
        .order_by("family")
    )
    return [{**row, "evaluations": row.pop("n_evaluations")} for row in rows]


EXPORT_RUN_COLUMNS = ["id", *RUN_FIELDS, "created_at", "updated_at"]
EXPORT_EVALUATION_COLUMNS = {
    "post_train_bits": "evaluations__post_train_bits",
    "method": "evaluations__method",
    "eval_loss": "evaluations__loss",
}
EXPORT_COLUMNS = [*EXPORT_RUN_COLUMNS, *EXPORT_EVALUATION_COLUMNS]


def run_export_rows(*, runs: QuerySet[Run], chunk_size: int = 2000) -> Any:
    """Stream one tuple per (run, evaluation), or one per run without evaluations, in EXPORT_COLUMNS order.

    A single LEFT JOIN read through a server-side cursor: memory stays flat however many runs match.
    """
    return (
        runs.order_by("id", "evaluations__post_train_bits", "evaluations__method")
        .values_list(*EXPORT_RUN_COLUMNS, *EXPORT_EVALUATION_COLUMNS.values())
        .iterator(chunk_size=chunk_size)
    )


def metric_history(*, run_id: int, key: str | None = None) -> QuerySet[MetricPoint]:
    """The run's logged metric points (of one key when given), by step, then in the order they were logged."""
    points = MetricPoint.objects.filter(run_id=run_id)
    if key is not None:
        points = points.filter(key=key)
    return points.order_by("step", "timestamp", "id")


def loss_curves(*, run: Run, max_points_per_key: int = 2_000) -> dict[str, list[tuple[int, float]]]:
    """{key: [(step, value), ...]} of the run's metrics whose name contains "loss", thinned to at most
    `max_points_per_key` points each (an even stride that keeps the last point), for plotting."""
    # order_by("key"): with the model's default ordering, DISTINCT would run over (key, step, ...), one row a point
    keys = list(
        MetricPoint.objects.filter(run=run, key__icontains="loss")
        .order_by("key")
        .values_list("key", flat=True)
        .distinct()
    )
    curves: dict[str, list[tuple[int, float]]] = {}
    for key in keys:
        points = [
            (step, math.nan if value is None else value)
            for step, value in metric_history(run_id=run.pk, key=key).values_list("step", "value")
        ]
        if len(points) > max_points_per_key:
            stride = -(-len(points) // max_points_per_key)
            points = [*points[:-1:stride], points[-1]]
        curves[key] = points
    return curves


def run_densities(*, runs: Sequence[Run]) -> dict[int, tuple[float | None, float | None]]:
    """(effective_params_16bit, density) per run id, against each family's 16-bit reference (DensityReference,
    one query for any number of families); runs without a final loss, or whose family has no reference yet, are
    left out (their fields are None). docs/api.md, Runs."""
    measured = [run for run in runs if run.final_loss is not None]
    if not measured:
        return {}
    teams = {run.team_id for run in measured}
    families = {run.family for run in measured}
    references = {
        (team_id, family): DensityConstants.from_mapping(constants)
        for team_id, family, constants in DensityReference.objects.filter(
            team_id__in=teams, family__in=families
        ).values_list("team_id", "family", "constants")
    }
    groups: dict[tuple[int, str], list[Run]] = {}
    for run in measured:
        if (run.team_id, run.family) in references:
            groups.setdefault((run.team_id, run.family), []).append(run)
    out: dict[int, tuple[float | None, float | None]] = {}
    for scope, members in groups.items():
        n = np.array([r.n_params for r in members], dtype=np.float64)
        d = np.array([r.n_tokens for r in members], dtype=np.float64)
        loss = np.array([r.final_loss for r in members], dtype=np.float64)
        n_hat = effective_params_16bit(references[scope], n_tokens=d, final_loss=loss)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = n_hat / n
        for run, a, b in zip(members, n_hat, rho, strict=True):
            out[run.pk] = (float(a) if math.isfinite(a) else None, float(b) if math.isfinite(b) and b > 0 else None)
    return out
