"""Reads of the MLflow API; every selector takes the acting team, and another team's rows do not exist for it."""

import functools
import math
import re
from collections.abc import Collection
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from apikit import rows
from mlflow_compat.errors import RESOURCE_DOES_NOT_EXIST, MlflowError
from mlflow_compat.models import Experiment, MlflowRun, PendingMetricPoint
from mlflow_compat.search import Clause
from runs.models import Team
from runs.selectors import metric_history


def metric_value_decode(value: Any) -> float:
    """A stored metric value (a number, or "NaN", "Infinity", "-Infinity") as a float."""
    return float(value)


def experiment_get(*, team: Team, experiment_id: str, for_update: bool = False) -> Experiment:
    """The team's experiment `experiment_id` ("0" is the default one); RESOURCE_DOES_NOT_EXIST otherwise.

    The default experiment exists once something made it (mlflow_compat.services.experiment_default, which the
    views and services call before they read "0"): a selector never writes.
    """

    def locked() -> QuerySet[Experiment]:  # built only to write: compiling a queryset costs more than the read
        return Experiment.objects.filter(team=team).select_for_update()

    if experiment_id == "0":
        default = locked().filter(is_default=True).first() if for_update else experiment_row(team=team, default=True)
        if default is None:
            raise MlflowError(RESOURCE_DOES_NOT_EXIST, "No Experiment with id=0 exists")
        return default
    row = _row_id(experiment_id)
    if row is None:
        found = None
    elif for_update:
        found = locked().filter(pk=row, is_default=False).first()
    else:
        found = experiment_row(team=team, default=False, pk=row)
    if found is None:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"No Experiment with id={experiment_id} exists")
    return found


def experiment_row(*, team: Team, default: bool, pk: int | None = None) -> Experiment | None:
    """The team's default experiment (`default`), or its other experiment `pk`; None when there is none. Read on
    every run created, so one statement written as SQL (apikit.rows)."""
    sql = f"SELECT {rows.select_list(Experiment, 'e')} FROM {rows.table(Experiment)} e "  # noqa: S608
    sql += "WHERE e.team_id = %s AND e.is_default = %s" + (" AND e.id = %s" if pk is not None else "")
    with rows.cursor() as cursor:
        cursor.execute(sql, [team.pk, default] if pk is None else [team.pk, default, pk])
        found = cursor.fetchone()
    if found is None:
        return None
    experiment = rows.instance(Experiment, found)
    experiment.team = team
    return experiment


def _row_id(experiment_id: str) -> int | None:
    """The row id an experiment id names: ASCII digits that fit a bigint, else None."""
    return int(experiment_id) if re.fullmatch(r"[0-9]{1,18}", experiment_id) else None


def experiments_get(*, team: Team, experiment_ids: list[str]) -> list[Experiment]:
    """The team's experiments `experiment_ids`, in that order, read in one query ("0" is the default one);
    RESOURCE_DOES_NOT_EXIST for the first that the team does not have."""
    rows = {row for row in map(_row_id, experiment_ids) if row is not None}
    found = {e.pk: e for e in Experiment.objects.filter(team=team, is_default=False, pk__in=rows)} if rows else {}
    experiments = []
    for experiment_id in experiment_ids:
        if experiment_id == "0":
            experiments.append(experiment_get(team=team, experiment_id="0"))
            continue
        experiment = found.get(_row_id(experiment_id) or -1)
        if experiment is None:
            raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"No Experiment with id={experiment_id} exists")
        experiments.append(experiment)
    return experiments


def experiment_get_by_name(*, team: Team, name: str) -> Experiment:
    """The team's experiment called `name`; RESOURCE_DOES_NOT_EXIST otherwise."""
    found = Experiment.objects.filter(team=team, name=name).first()
    if found is None:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Could not find experiment with name '{name}'")
    return found


def experiment_list(*, team: Team) -> QuerySet[Experiment]:
    return Experiment.objects.filter(team=team).order_by("id")


def run_get(*, team: Team, run_id: str, for_update: bool = False) -> MlflowRun:
    """The team's MLflow run `run_id` with its experiment, locked to write when `for_update`;
    RESOURCE_DOES_NOT_EXIST otherwise. Every MLflow call on a run starts here: one statement written as SQL
    (apikit.rows)."""
    lock = for_update and connection.features.has_select_for_update_of
    with rows.cursor() as cursor:
        cursor.execute(_run_sql(lock), [team.pk, run_id])
        row = cursor.fetchone()
    if row is None:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Run with id={run_id} not found")
    width = rows.width(MlflowRun)
    found = rows.instance(MlflowRun, row[:width])
    found.experiment = rows.instance(Experiment, row[width:])
    found.team = team  # the acting team, already read: no join for it
    return found


@functools.cache
def _run_sql(for_update: bool) -> str:
    run, experiment = rows.table(MlflowRun), rows.table(Experiment)
    sql = (
        f"SELECT {rows.select_list(MlflowRun, 'r')}, {rows.select_list(Experiment, 'e')} FROM {run} r "  # noqa: S608
        f"JOIN {experiment} e ON e.id = r.experiment_id WHERE r.team_id = %s AND r.run_id = %s"
    )
    return sql + " FOR UPDATE OF r" if for_update else sql


def run_list(*, team: Team, experiments: list[Experiment]) -> QuerySet[MlflowRun]:
    return MlflowRun.objects.filter(team=team, experiment__in=experiments).select_related("experiment")


# MLflow's attributes a search can name, and what they are in SQL.
TEXT_ATTRIBUTES = {"run_id", "run_name", "status", "user_id", "lifecycle_stage"}
NUMBER_ATTRIBUTES = {"start_time", "end_time"}
# Tags Bitscale shows on every run (mlflow_compat.api.run_tags), as SQL: each wins over a logged tag of its name.
DERIVED_TAGS = {
    "bitscale.run_id": "r.bitscale_run_id::text",
    "bitscale.error": "NULLIF(r.mapping_error, '')",
    "bitscale.history_dropped": "NULLIF(r.history_dropped, 0)::text",
}
SQL_OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _clause_sql(clause: Clause) -> tuple[str, list[Any]] | None:
    """The clause as a PostgreSQL condition that keeps exactly the runs `search.matches` keeps, or None when it
    cannot be said exactly in SQL (ILIKE, whose case folding differs from Python's; a number compared with a text
    attribute...): those are applied in Python to what SQL returned."""
    op = clause.op
    if op == "ILIKE":
        return None
    if isinstance(clause.value, str):
        if clause.entity == "params":
            expr, params = "(r.params ->> %s)", [clause.key]
        elif clause.entity == "tags":
            expr, params = "(r.tags ->> %s)", [clause.key]
            if clause.key in DERIVED_TAGS:
                expr = f"COALESCE({DERIVED_TAGS[clause.key]}, r.tags ->> %s)"
        elif clause.entity == "attributes" and clause.key in TEXT_ATTRIBUTES:
            expr, params = f"r.{connection.ops.quote_name(clause.key)}", []
        else:
            return None
        if op == "LIKE":  # no escape character: `\` is a character like any other, as in search.like
            return f"{expr} LIKE %s ESCAPE ''", [*params, clause.value]
        return f"{expr} {SQL_OPERATORS[op]} %s", [*params, clause.value]
    if clause.entity == "metrics":
        # Values are stored as numbers or as "NaN", "Infinity", "-Infinity", all of which PostgreSQL reads as
        # float8; NaN passes no comparison in Python, while PostgreSQL sorts it above every number.
        value = "(r.metrics -> %s ->> 0)"
        sql = f"{value}::float8 {SQL_OPERATORS[op]} %s::float8 AND {value} <> 'NaN'"
        return sql, [clause.key, clause.value, clause.key]
    if clause.entity == "attributes" and clause.key in NUMBER_ATTRIBUTES:
        column = f"r.{connection.ops.quote_name(clause.key)}"
        return f"{column}::float8 {SQL_OPERATORS[op]} %s::float8", [clause.value]
    return None


def run_search(
    *,
    team: Team,
    experiments: list[Experiment],
    stages: Collection[str],
    clauses: list[Clause],
    page: tuple[int, int] | None,
) -> tuple[list[MlflowRun], list[Clause]]:
    """The runs of the experiments that pass the clauses SQL can decide, in MLflow's default order (newest start
    first, a run without a start time as 0, then run id), and the clauses left for Python (`search.matches`).

    The filter runs in the database (PostgreSQL): a search reads the runs it finds, not all of the experiments'
    runs. `page` (offset, limit) is applied in the database too when no clause is left for Python.
    """
    where = ["r.team_id = %s", "r.experiment_id = ANY(%s)", "r.lifecycle_stage = ANY(%s)"]
    params: list[Any] = [team.pk, [e.pk for e in experiments], list(stages)]
    left: list[Clause] = []
    for clause in clauses:
        found = _clause_sql(clause) if connection.vendor == "postgresql" else None
        if found is None:
            left.append(clause)
        else:
            where.append(f"({found[0]})")
            params += found[1]
    if not experiments or not stages:
        return [], left
    sql = (
        f"SELECT {rows.select_list(MlflowRun, 'r')}, {rows.select_list(Experiment, 'e')} "  # noqa: S608
        f"FROM {rows.table(MlflowRun)} r JOIN {rows.table(Experiment)} e ON e.id = r.experiment_id "
        f"WHERE {' AND '.join(where)} ORDER BY COALESCE(r.start_time, 0) DESC, r.run_id"
    )
    if page is not None and not left:
        sql += " LIMIT %s OFFSET %s"
        params += [page[1], page[0]]
    if connection.vendor != "postgresql":  # SQLite (make run): the same query with its own array-free spelling
        return _run_search_orm(team=team, experiments=experiments, stages=stages, page=None if left else page), left
    width = rows.width(MlflowRun)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found_rows = cursor.fetchall()
    experiments_by_id = {e.pk: e for e in experiments}
    runs = []
    for row in found_rows:
        run = rows.instance(MlflowRun, row[:width])
        run.experiment = experiments_by_id.get(run.experiment_id) or rows.instance(Experiment, row[width:])
        run.team = team
        runs.append(run)
    return runs, left


def _run_search_orm(
    *, team: Team, experiments: list[Experiment], stages: Collection[str], page: tuple[int, int] | None
) -> list[MlflowRun]:
    runs = run_list(team=team, experiments=experiments).filter(lifecycle_stage__in=list(stages))
    ordered = runs.order_by(Coalesce("start_time", 0).desc(), "run_id")
    return list(ordered if page is None else ordered[page[0] : page[0] + page[1]])


def run_metric_history(*, mlflow_run: MlflowRun, key: str, offset: int, limit: int) -> list[tuple[float, int, int]]:
    """`limit` logged (value, timestamp, step) of metric `key` from `offset`, by step then in logging order (one
    page read from the database, not the whole history); NaN read back."""
    rows: QuerySet[Any, tuple[float | None, int, int]]
    if mlflow_run.bitscale_run_id is not None:
        rows = metric_history(run_id=mlflow_run.bitscale_run_id, key=key).values_list("value", "timestamp", "step")
    else:
        rows = (
            PendingMetricPoint.objects.filter(mlflow_run=mlflow_run, key=key)
            .order_by("step", "timestamp", "id")
            .values_list("value", "timestamp", "step")
        )
    page = rows[offset : offset + limit]
    return [(math.nan if value is None else value, timestamp, step) for value, timestamp, step in page]
