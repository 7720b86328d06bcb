"""Writes to runs and evaluations: every change to a team's runs goes through these functions."""

import dataclasses
import functools
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apikit import rows
from apikit.exceptions import DomainError
from config import dispatch
from runs.models import (
    MAX_METRIC_POINTS_PER_RUN,
    ApiKey,
    Evaluation,
    FamilyChange,
    MetricPoint,
    Run,
    Team,
    api_key_digest,
)

UPSERT_ATTEMPTS = 3  # a concurrent insert of the same external_id loses the race once, then updates
API_KEY_PREFIX = "bsk_"

ErrorMap = dict[str, Any]


class BatchInvalid(DomainError):
    """Some items of a batch are invalid; `errors` maps each failing position ("0", "1", ...) to its field errors."""

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(dict(errors))


@dataclass(frozen=True)
class UpsertResult:
    """What a batch did: the runs in input order, and how many were new."""

    runs: list[Run]
    created: int
    updated: int
    created_evaluations: list[Evaluation]  # the evaluations inserted, of new and updated runs
    # With drop_refused_evaluations: the item's evaluations left out, by position, with their errors.
    refused_evaluations: dict[str, Any] = dataclasses.field(default_factory=dict)


# Families that changed ----------------------------------------------------------------------


def family_changes_record(*, team_id: int, families: Sequence[str] | set[str]) -> None:
    """Mark the families whose runs changed (runs.models.FamilyChange); call inside the writer's transaction, as
    its last statement: the row locks it takes are held only until the commit.

    One statement upserts every family's row and says, per family, whether this write starts a pending episode
    (no refit message on its way yet); for those, fits.pipeline's refit is sent by name after the commit, delayed
    by FIT_DEBOUNCE_SECONDS. A broker that is down loses nothing: the rows stay pending for the beat's sweep.
    """
    names = sorted(set(families))
    if not names:
        return
    at = connection.ops.adapt_datetimefield_value(timezone.now())  # as the ORM stores it (text on SQLite)
    tuples = ", ".join(["(%s, %s, %s, %s, %s)"] * len(names))
    values = [value for family in names for value in (team_id, family, at, at, at)]
    _family_changes_upsert(f"VALUES {tuples}", values)


def family_change_record_of_run(*, run_id: int) -> None:
    """family_changes_record for the family that run `run_id` is in, read by the same statement."""
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    _family_changes_upsert(
        f"SELECT team_id, family, %s, %s, %s FROM {rows.table(Run)} WHERE id = %s", [at] * 3 + [run_id]
    )


def _family_changes_upsert(source: str, values: Sequence[Any]) -> None:
    """Upsert the FamilyChange rows of `source` (rows of team_id, family and the time three times) and send the
    refit of each family whose pending episode this write starts, after the commit."""
    table = rows.table(FamilyChange)
    # announced_at equals changed_at only where this statement set both: a new row, or one with no message on
    # its way (PostgreSQL and SQLite 3.35+ both take ON CONFLICT ... RETURNING).
    sql = (
        f"INSERT INTO {table} (team_id, family, changed_at, pending_since, announced_at) {source} "  # noqa: S608
        "ON CONFLICT (team_id, family) DO UPDATE SET changed_at = excluded.changed_at, "
        f"pending_since = COALESCE({table}.pending_since, excluded.changed_at), "
        f"announced_at = COALESCE({table}.announced_at, excluded.changed_at) "
        "RETURNING team_id, family, announced_at = changed_at"
    )
    with rows.cursor() as cursor:
        cursor.execute(sql, values)
        announced = [(team_id, family) for team_id, family, new in cursor.fetchall() if new]
    for team_id, family in announced:
        transaction.on_commit(
            partial(
                dispatch.send,
                dispatch.REFIT_FAMILY,
                team_id=team_id,
                family=family,
                countdown=settings.FIT_DEBOUNCE_SECONDS,
            )
        )


# Teams and keys ----------------------------------------------------------------------------


def team_get_or_create(*, slug: str, name: str = "") -> tuple[Team, bool]:
    """Create the team `slug` unless it exists; running it again changes nothing."""
    team = Team(slug=slug, name=name)
    team.full_clean(validate_unique=False)
    return Team.objects.get_or_create(slug=slug, defaults={"name": name})


def api_key_create(*, team: Team, read_only: bool = False, label: str = "") -> tuple[ApiKey, str]:
    """Create a key for `team`; returns the row and the secret, which is not stored and cannot be shown again."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(team=team, label=label, read_only=read_only, prefix=secret[:12], digest=api_key_digest(secret))
    key.full_clean()
    key.save()
    return key, secret


def api_key_revoke(*, key: ApiKey) -> None:
    """Revoke a key; requests with it answer 401 from now on."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])


def api_key_touch(*, key: ApiKey, at_most_every_seconds: int = 60) -> None:
    """Record that a key was used, writing at most once a minute per key so reads stay reads."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= at_most_every_seconds:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


# Runs ---------------------------------------------------------------------------------------


def default_number_format(
    *, weight_bits: float, activation_bits: float, kv_bits: float, exponent_bits: int | None = None
) -> str:
    """The contract's default: `fp` when all bits are 16 or more, else `int`; `fp` too when a float format is given."""
    if exponent_bits is not None or min(weight_bits, activation_bits, kv_bits) >= 16:
        return Run.NumberFormat.FP
    return Run.NumberFormat.INT


def _rule_errors(
    run: Run, *, new_evaluations: Sequence[Mapping[str, Any]], old_evaluations: Sequence[Evaluation]
) -> ErrorMap:
    """Rules across fields, checked on the run as it will be stored (after merging an update)."""
    errors: ErrorMap = {}
    if run.status == Run.Status.FINISHED and run.final_loss is None:
        errors["final_loss"] = ["Required when status is finished."]
    if run.excluded and not run.exclusion_reason.strip():
        errors["exclusion_reason"] = ["Required when excluded is true."]
    if (run.exponent_bits is None) != (run.mantissa_bits is None):
        missing = "exponent_bits" if run.exponent_bits is None else "mantissa_bits"
        errors[missing] = ["Give exponent_bits and mantissa_bits together."]
    elif run.exponent_bits is not None and run.number_format != Run.NumberFormat.FP:
        errors["exponent_bits"] = [
            f"Only for number_format fp (this run's is {run.number_format}): "
            "send number_format fp, or exponent_bits and mantissa_bits null."
        ]
    evaluation_errors = {
        str(position): {"post_train_bits": [f"Must be below the run's weight_bits ({run.weight_bits:g})."]}
        for position, item in enumerate(new_evaluations)
        if item["post_train_bits"] >= run.weight_bits
    }
    if evaluation_errors:
        errors["evaluations"] = evaluation_errors
    stored_bits = [e.post_train_bits for e in old_evaluations]
    if stored_bits and max(stored_bits) >= run.weight_bits:
        errors["weight_bits"] = [
            f"Must stay above the post_train_bits of the run's evaluations ({max(stored_bits):g})."
        ]
    return errors


def _cooldown_trunks(*, team_id: int, items: Sequence[Mapping[str, Any]]) -> set[int]:
    """The ids among the items' `cooldown_of` that are runs of the team (one query; none when no item sends one)."""
    ids = {item["cooldown_of"] for item in items if item.get("cooldown_of") is not None}
    return set(Run.objects.filter(team_id=team_id, pk__in=ids).values_list("pk", flat=True)) if ids else set()


def _cooldown_resolve(fields: dict[str, Any], *, run_pk: int | None, trunks: set[int]) -> ErrorMap:
    """Turn the API's `cooldown_of` (a run id) into the foreign key's column, in place; the errors when the trunk
    is not a run of the same team or is the run itself (another team's run reads as unknown: teams are isolated)."""
    if "cooldown_of" not in fields:
        return {}
    trunk = fields.pop("cooldown_of")
    if trunk is not None and run_pk is not None and trunk == run_pk:
        return {"cooldown_of": ["A run cannot be a cooldown of itself."]}
    if trunk is not None and trunk not in trunks:
        return {"cooldown_of": [f"No run with id {trunk} in this team."]}
    fields["cooldown_of_id"] = trunk
    return {}


def _apply(run: Run, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        setattr(run, name, value)


def runs_upsert(
    *, team: Team, items: Sequence[Mapping[str, Any]], drop_refused_evaluations: bool = False
) -> UpsertResult:
    """Create or update a batch of runs for `team`: every item lands, or none does.

    Items are validated field by field already (the API serializers). An item whose external_id the team
    already has updates that run in place with the fields it sends, so a training script can re-post
    safely; its evaluations are added, or replace the loss of the same (post_train_bits, method).
    Raises BatchInvalid, keyed by position, when a rule across fields fails. With `drop_refused_evaluations`
    (one item only: the MLflow mapping's writes), evaluations that break a rule while nothing else does are left
    out and reported in `refused_evaluations`, and the rest of the item is written: what a second call without
    them would write, without the first call's locked read and rollback.
    """
    if drop_refused_evaluations and len(items) != 1:
        raise ValueError("drop_refused_evaluations takes one item")
    for attempt in range(1, UPSERT_ATTEMPTS + 1):
        try:
            if drop_refused_evaluations:
                return _run_upsert_one(team=team, item=items[0], drop_refused_evaluations=True)
            return _runs_upsert_once(team=team, items=items)
        except IntegrityError:
            # Another request inserted one of our external_ids between our read and our insert:
            # the next attempt finds it and updates it instead.
            if attempt == UPSERT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class _LostInsertRace(IntegrityError):
    """Another transaction stored this external_id between our read and our insert (runs_upsert tries again)."""


def _runs_upsert_once(*, team: Team, items: Sequence[Mapping[str, Any]]) -> UpsertResult:
    if len(items) == 1:
        return _run_upsert_one(team=team, item=items[0])
    keys = [item["external_id"] for item in items if item.get("external_id")]
    # Stored evaluations matter only to an item that sends evaluations (merged by bits and method) or changes
    # weight_bits (which must stay above them); the others skip reading them.
    needs_evaluations = any("weight_bits" in item or item.get("evaluations") for item in items)
    with transaction.atomic():
        known_runs = Run.objects.select_for_update().filter(team=team, external_id__in=keys)
        if needs_evaluations:
            known_runs = known_runs.prefetch_related("evaluations")
        known = {run.external_id: run for run in known_runs} if keys else {}
        now = timezone.now()
        errors: dict[str, ErrorMap] = {}
        touched_families: set[str] = set()
        first_position: dict[str, int] = {}
        plan: list[tuple[Run, bool, list[Mapping[str, Any]], list[Evaluation]]] = []
        trunks = _cooldown_trunks(team_id=team.pk, items=items)
        for position, item in enumerate(items):
            fields = dict(item)
            evaluations = fields.pop("evaluations", None) or []
            link_errors = _cooldown_resolve(
                fields, run_pk=getattr(known.get(fields.get("external_id") or ""), "pk", None), trunks=trunks
            )
            if link_errors:
                errors[str(position)] = link_errors
                continue
            external_id = fields.get("external_id")
            if external_id and external_id in first_position:
                errors[str(position)] = {
                    "external_id": [f"Repeats the external_id of item {first_position[external_id]} in this batch."]
                }
                continue
            if external_id:
                first_position[external_id] = position
            existing = known.get(external_id) if external_id else None
            if existing is None:
                # The contract's default trained_at: trained when registered.
                run = Run(team=team, **{"trained_at": now, **fields})
                if "number_format" not in fields:
                    run.number_format = default_number_format(
                        weight_bits=run.weight_bits,
                        activation_bits=run.activation_bits,
                        kv_bits=run.kv_bits,
                        exponent_bits=run.exponent_bits,
                    )
                old_evaluations: list[Evaluation] = []
            else:
                run = existing
                touched_families.add(run.family)  # a run that moves family changes both
                _apply(run, fields)
                run.updated_at = now
                old_evaluations = list(run.evaluations.all()) if needs_evaluations else []
            problems = _rule_errors(run, new_evaluations=evaluations, old_evaluations=old_evaluations)
            if problems:
                errors[str(position)] = problems
            plan.append((run, existing is None, evaluations, old_evaluations))
        if errors:
            raise BatchInvalid(errors)

        new_runs = [run for run, is_new, _, _ in plan if is_new]
        Run.objects.bulk_create(new_runs)
        changed_fields = sorted({name for item in items for name in item if name != "evaluations"} | {"updated_at"})
        old_runs = [run for run, is_new, _, _ in plan if not is_new]
        if old_runs:
            Run.objects.bulk_update(old_runs, fields=changed_fields)
        created_evaluations = _evaluations_upsert_many([(run, new, old) for run, _, new, old in plan if new], now=now)
        family_changes_record(team_id=team.pk, families=touched_families | {run.family for run, _, _, _ in plan})
    return UpsertResult(
        runs=[run for run, _, _, _ in plan],
        created=len(new_runs),
        updated=len(old_runs),
        created_evaluations=created_evaluations,
    )


def _run_upsert_one(*, team: Team, item: Mapping[str, Any], drop_refused_evaluations: bool = False) -> UpsertResult:
    """One run (a native post, every MLflow write): what _runs_upsert_once does for a batch, in statements written
    once from the model's metadata (apikit.rows) rather than ORM queries compiled per request. The same promises:
    the stored run is read locked and the rules checked on the run as it will be stored before anything is
    written (BatchInvalid keyed "0", naming the field), everything in one transaction, the families marked."""
    fields = dict(item)
    evaluations = fields.pop("evaluations", None) or []
    external_id = fields.get("external_id")
    with transaction.atomic():
        existing = rows.get(Run, for_update=True, team_id=team.pk, external_id=external_id) if external_id else None
        link_errors = _cooldown_resolve(
            fields, run_pk=getattr(existing, "pk", None), trunks=_cooldown_trunks(team_id=team.pk, items=[item])
        )
        if link_errors:
            raise BatchInvalid({"0": link_errors})
        now = timezone.now()
        families = set()
        old_evaluations: list[Evaluation] = []
        if existing is None:
            run = Run(team=team, **{"trained_at": now, **fields})  # the contract's default: trained when registered
            if "number_format" not in fields:
                run.number_format = default_number_format(
                    weight_bits=run.weight_bits,
                    activation_bits=run.activation_bits,
                    kv_bits=run.kv_bits,
                    exponent_bits=run.exponent_bits,
                )
        else:
            run = existing
            run.team = team
            families.add(run.family)  # a run that moves family changes both
            _apply(run, fields)
            run.updated_at = now
            if "weight_bits" in item or evaluations:
                old_evaluations = rows.select(Evaluation, run_id=run.pk)
        problems = _rule_errors(run, new_evaluations=evaluations, old_evaluations=old_evaluations)
        refused: dict[str, Any] = {}
        if drop_refused_evaluations and set(problems) == {"evaluations"}:
            refused = problems.pop("evaluations")
            evaluations = [e for position, e in enumerate(evaluations) if str(position) not in refused]
        if problems:
            raise BatchInvalid({"0": problems})
        if existing is None:
            if not rows.insert_new(run, conflict=("team", "external_id")):
                raise _LostInsertRace(f"external_id {external_id!r} was stored by another request")
        else:
            rows.update(run, [*fields, "updated_at"])
        created_evaluations = (
            _evaluations_upsert_many([(run, evaluations, old_evaluations)], now=now) if evaluations else []
        )
        family_changes_record(team_id=team.pk, families=families | {run.family})
    return UpsertResult(
        runs=[run],
        created=int(existing is None),
        updated=int(existing is not None),
        created_evaluations=created_evaluations,
        refused_evaluations=refused,
    )


def _evaluations_upsert_many(
    triples: Sequence[tuple[Run, Sequence[Mapping[str, Any]], Sequence[Evaluation]]], *, now: datetime
) -> list[Evaluation]:
    """Insert new evaluations and replace the loss of known ones, in two statements for the whole batch; returns
    the inserted ones."""
    to_create: list[Evaluation] = []
    to_update: list[Evaluation] = []
    for run, items, old_evaluations in triples:
        stored = {(e.post_train_bits, e.method): e for e in old_evaluations}
        for item in items:
            method = item.get("method", "rtn")
            current = stored.get((item["post_train_bits"], method))
            if current is None:
                values = {"post_train_bits": item["post_train_bits"], "method": method, "loss": item["loss"]}
                to_create.append(Evaluation(run=run, **values))
            else:
                current.loss, current.updated_at = item["loss"], now
                to_update.append(current)
    if len(triples) == 1:
        rows.insert_many(to_create)  # one statement written once per count, not an ORM bulk_create per call
    else:
        Evaluation.objects.bulk_create(to_create)
    if to_update:
        Evaluation.objects.bulk_update(to_update, fields=["loss", "updated_at"])
    return to_create


def run_update(*, run: Run, fields: Mapping[str, Any]) -> Run:
    """Change some fields of a run (PATCH); raises ValidationError naming the field when a rule fails."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        external_id = fields.get("external_id")
        taken = Run.objects.filter(team_id=run.team_id, external_id=external_id).exclude(pk=run.pk)
        if external_id and taken.exists():
            raise ValidationError({"external_id": ["Another run of this team has this external_id."]})
        old_family = run.family
        fields = dict(fields)
        link_errors = _cooldown_resolve(
            fields, run_pk=run.pk, trunks=_cooldown_trunks(team_id=run.team_id, items=[fields])
        )
        if link_errors:
            raise ValidationError(link_errors)
        _apply(run, fields)
        problems = _rule_errors(run, new_evaluations=[], old_evaluations=list(run.evaluations.all()))
        if problems:
            raise ValidationError(problems)
        try:
            # The check above cannot see a concurrent PATCH that takes the same external_id; the unique
            # constraint can. A savepoint keeps the transaction usable to answer 400.
            with transaction.atomic():
                run.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:
            if not external_id:
                raise
            raise ValidationError({"external_id": ["Another run of this team has this external_id."]}) from None
        family_changes_record(team_id=run.team_id, families={old_family, run.family})
    return run


def run_delete(*, run: Run) -> None:
    """Delete a run and its evaluations."""
    with transaction.atomic():
        run.delete()
        family_changes_record(team_id=run.team_id, families=[run.family])


def evaluation_upsert(*, run: Run, post_train_bits: float, loss: float, method: str = "rtn") -> tuple[Evaluation, bool]:
    """Add a PTQ evaluation to `run`, or replace the loss of the same (post_train_bits, method); True if new."""
    if post_train_bits >= run.weight_bits:
        raise ValidationError({"post_train_bits": [f"Must be below the run's weight_bits ({run.weight_bits:g})."]})
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()  # serialises writers of this run's evaluations
        evaluation, created = Evaluation.objects.update_or_create(
            run=run, post_train_bits=post_train_bits, method=method, defaults={"loss": loss}
        )
        Run.objects.filter(pk=run.pk).update(updated_at=timezone.now())
        family_changes_record(team_id=run.team_id, families=[run.family])
    return evaluation, created


# Metric history -----------------------------------------------------------------------------

# The metrics a family's curve fits read (fits.curve_pipeline, docs/curves.md "Stored curve fits"): the loss curve,
# the first of these keys a run of the family logs, and the learning rate.
CURVE_LOSS_KEYS = ("train_loss", "loss", "val_loss", "eval_loss")
LR_KEY = "lr"


def metric_points_append(
    *, run_id: int, points: Sequence[tuple[str, float, int, int]], stored: int | None = None
) -> int:
    """Add (key, value, step, timestamp) points to run `run_id`'s history, up to MAX_METRIC_POINTS_PER_RUN in all.

    NaN is stored as NULL (as SQLite would anyway). Points past the bound are not stored; returns how many were.
    `stored` is the caller's count of the points the run already holds (counted here when not given). Points of a
    training curve (CURVE_LOSS_KEYS, or `lr`) mark the run's family changed, so its curve fits follow
    (fits.curve_pipeline; its law fits see no change and are not refitted). On PostgreSQL the points go in one
    INSERT of five arrays (no model instance per point: a training loop logs hundreds of points per request).
    """
    if stored is None:
        stored = MetricPoint.objects.filter(run_id=run_id).count()
    room = max(MAX_METRIC_POINTS_PER_RUN - stored, 0)
    kept = points[:room]
    if not kept:
        return 0
    if connection.vendor == "postgresql":
        keys, values, steps, timestamps = zip(
            *[(k, None if math.isnan(v) else float(v), int(s), int(t)) for k, v, s, t in kept], strict=True
        )
        _metric_points_insert([run_id, list(keys), list(values), list(steps), list(timestamps)])
    else:
        MetricPoint.objects.bulk_create(
            [
                MetricPoint(run_id=run_id, key=k, value=None if math.isnan(v) else v, step=s, timestamp=t)
                for k, v, s, t in kept
            ],
            batch_size=2000,
        )
    if any(_is_curve_key(key) for key, _, _, _ in kept):
        family_change_record_of_run(run_id=run_id)
    return len(kept)


def _metric_points_insert(params: list[Any]) -> None:
    """The five arrays bound in binary on the server's side, and the statement prepared once per connection:
    Django's cursor binds on the client, quoting every point into the SQL text in Python, and PostgreSQL parses
    and plans that text again for every batch. Errors are Django's (connection.wrap_database_errors), as any
    query's; the statement runs in the caller's transaction (the same connection)."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_metric_points_sql(), params, prepare=True)


def _is_curve_key(key: str) -> bool:
    """A metric a curve fit reads (fits.curve_pipeline): a loss curve, or the learning rate."""
    return key == LR_KEY or key in CURVE_LOSS_KEYS


@functools.cache
def _metric_points_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("run_id", "key", "value", "step", "timestamp"))
    return (
        f"INSERT INTO {quote(MetricPoint._meta.db_table)} ({columns}) "  # noqa: S608
        "SELECT %s, * FROM UNNEST(%s::varchar[], %s::double precision[], %s::bigint[], %s::bigint[])"
    ).replace("%s", "%b")
