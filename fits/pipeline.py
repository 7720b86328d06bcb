"""The refit pipeline: mark scopes dirty, debounce, snapshot, claim, compute in chunks, publish, sweep.

The workers call these steps through thin tasks (workers/tasks.py); nothing here needs a broker, so every step
can be tested by calling it. A fit moves queued -> running -> succeeded | failed, and each step is a
conditional UPDATE, so a duplicate or late message finds nothing to do. The two steps that start the next one
after their transaction commits send it by task name through fits.dispatch; this module imports no task.
"""

import logging
import math
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from fits import dispatch
from fits.heartbeat import chunk_in_progress, fit_heartbeat
from fits.json_numbers import json_safe
from fits.laws import FitFailed, assemble_fit, bootstrap_chunk, fit_point
from fits.models import Fit, FitChunk, FitScope, Law
from fits.selectors import FitData, fit_data, fit_latest

logger = logging.getLogger(__name__)

try:
    CODE_VERSION = f"bitscale {version('bitscale')}"
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    CODE_VERSION = "bitscale dev"


# Writers: mark the family's scopes dirty --------------------------------------------------------------


def fit_scopes_mark_dirty(*, team_id: int, families: Iterable[str]) -> None:
    """Record that the runs of `families` changed; call inside the writer's transaction.

    Bumps each scope's generation and, once per dirty episode, sends a debounced refit after commit.
    The scope rows are updated last, in one statement, so the row locks are held only until the commit.
    """
    families = sorted(set(families))
    if not families:
        return
    now = timezone.now()
    touched = _scopes_bump(team_id=team_id, families=families, now=now)
    if len(touched) < len(families) * len(Law):
        existing = {(family, law) for _, family, law, _ in touched}
        created = False
        for family in families:
            for law in Law:
                if (family, law.value) not in existing:
                    _scope_create(team_id=team_id, family=family, law=law.value, now=now)
                    created = True
        if created:
            touched = [
                (scope_id, family, law, enqueued_at is None)
                for scope_id, family, law, enqueued_at in FitScope.objects.filter(
                    team_id=team_id, family__in=families
                ).values_list("id", "family", "law", "enqueued_at")
            ]
    for scope_id in [scope_id for scope_id, _, _, idle in touched if idle]:
        if FitScope.objects.filter(pk=scope_id, enqueued_at__isnull=True).update(enqueued_at=now):
            transaction.on_commit(
                partial(dispatch.send, dispatch.REFIT_SCOPE, scope_id=scope_id, countdown=settings.FIT_DEBOUNCE_SECONDS)
            )


def _scopes_bump(*, team_id: int, families: list[str], now: Any) -> list[tuple[int, str, str, bool]]:
    """Count a change on the existing scopes of `families`, in one statement that also returns, per scope,
    (id, family, law, whether no refit is enqueued): the UPDATE locks the rows until the commit, and RETURNING
    saves reading them again (PostgreSQL; SQLite 3.35+)."""
    table = connection.ops.quote_name(FitScope._meta.db_table)
    marks = ", ".join(["%s"] * len(families))
    at = connection.ops.adapt_datetimefield_value(now)  # as the ORM stores it (naive UTC text on SQLite)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET generation = generation + 1, dirty_since = COALESCE(dirty_since, %s), "  # noqa: S608
            f"last_change_at = %s WHERE team_id = %s AND family IN ({marks}) "
            "RETURNING id, family, law, enqueued_at IS NULL",
            [at, at, team_id, *families],
        )
        return [(scope_id, family, law, bool(idle)) for scope_id, family, law, idle in cursor.fetchall()]


def _scope_create(*, team_id: int, family: str, law: str, now: Any) -> None:
    try:
        with transaction.atomic():
            FitScope.objects.create(
                team_id=team_id, family=family, law=law, generation=1, dirty_since=now, last_change_at=now
            )
    except IntegrityError:  # a concurrent writer created it first: count our change on it
        FitScope.objects.filter(team_id=team_id, family=family, law=law).update(
            generation=F("generation") + 1, dirty_since=Coalesce("dirty_since", now), last_change_at=now
        )


# Step 1 (default queue): debounce, snapshot, queue a version --------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refit request did: queued a fit, found nothing to do, or asks to be retried later."""

    fit_id: int | None = None
    retry_in: float | None = None


def fit_scope_refresh(*, scope_id: int, force: bool = False) -> RefreshOutcome:
    """Turn a dirty scope into a queued fit once its changes have paused (or waited long enough).

    1. Debounce: wait until FIT_DEBOUNCE_SECONDS passed since the last change, at most FIT_MAX_WAIT_SECONDS
       since the first unfitted one; a fit already in flight also means "later".
    2. Under the scope's row lock (writers wait), snapshot the runs. Data equal to the last version's (same
       fingerprint) creates no version; otherwise a new queued version holds the snapshot.
    3. The scope is clean again; the fit is sent to the fits queue after commit.
    """
    now = timezone.now()
    scope = FitScope.objects.filter(pk=scope_id).first()
    if scope is None or (scope.dirty_since is None and not force):
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=None)
        return RefreshOutcome()
    retry_in = 0.0
    if not force and scope.last_change_at is not None and scope.dirty_since is not None:
        ready_at = min(
            scope.last_change_at + timedelta(seconds=settings.FIT_DEBOUNCE_SECONDS),
            scope.dirty_since + timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS),
        )
        retry_in = max(0.0, (ready_at - now).total_seconds())
    in_flight = Fit.objects.filter(team_id=scope.team_id, family=scope.family, law=scope.law).in_flight()
    if not retry_in and in_flight.exists():  # the next version starts once this one is done
        retry_in = max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0)
    if retry_in:
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=now)  # our message is still on its way
        return RefreshOutcome(retry_in=retry_in)

    with transaction.atomic():
        scope = FitScope.objects.select_for_update().get(pk=scope_id)
        data = fit_data(team_id=scope.team_id, family=scope.family)
        last = fit_latest(team_id=scope.team_id, family=scope.family, law=scope.law)
        FitScope.objects.filter(pk=scope_id).update(dirty_since=None, enqueued_at=None, fingerprint=data.fingerprint)
        same_settings = last is not None and (last.objective, last.screen_outliers) == (
            scope.objective,
            scope.screen_outliers,
        )
        if last is not None and last.data_fingerprint == data.fingerprint and same_settings:
            return RefreshOutcome()  # the runs and settings are as the last version saw them: no duplicate
        if last is None and (data.n_runs == 0 or (not force and not data.law_applies(scope.law))):
            # Nothing was ever fitted and nothing is there to fit: no runs, or (fp law) no run reports its
            # floating-point format. An explicit request (force) still makes a version, which fails with the reason.
            return RefreshOutcome()
        fit = Fit.objects.create(
            team_id=scope.team_id,
            family=scope.family,
            law=scope.law,
            version=(last.version if last else 0) + 1,
            n_bootstrap=settings.FIT_BOOTSTRAP_DRAWS,
            chunk_size=settings.FIT_CHUNK_SIZE,
            run_ids=data.run_ids,
            snapshot=data.to_bytes(),
            data_fingerprint=data.fingerprint,
            code_version=CODE_VERSION,
            objective=scope.objective,
            screen_outliers=scope.screen_outliers,
        )
        transaction.on_commit(partial(dispatch.send, dispatch.RUN_FIT, fit_id=fit.pk))
    return RefreshOutcome(fit_id=fit.pk)


# Step 2 (fits queue): claim, point fit, fan out the bootstrap ------------------------------------------------


def _stuck_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS)


def fit_execute(*, fit_id: int) -> list[int]:
    """Claim a queued fit (or take over one whose worker went silent), compute its point estimate, and
    return the bootstrap chunk indices still to compute; the caller sends them to the workers.

    1. Claim: queued -> running, or running with a heartbeat older than FIT_STUCK_AFTER_SECONDS (its worker
       died). Zero rows updated: a duplicate delivery; nothing to do.
    2. Compute the point fit outside any transaction, the heartbeat kept fresh meanwhile (fits.heartbeat);
       FitFailed is an outcome (stored, not retried).
    3. Publish the point state, conditional on this attempt still owning the fit.
    """
    now = timezone.now()
    claimable = Q(status=Fit.Status.QUEUED) | Q(status=Fit.Status.RUNNING, heartbeat_at__lt=_stuck_before())
    claimed = Fit.objects.filter(claimable, pk=fit_id).update(
        status=Fit.Status.RUNNING, started_at=Coalesce("started_at", now), heartbeat_at=now, attempt=F("attempt") + 1
    )
    if claimed != 1:
        return []
    fit = Fit.objects.defer("draws").get(pk=fit_id)
    if fit.point_state is None:
        data = FitData.from_bytes(bytes(fit.snapshot or b""), fingerprint=fit.data_fingerprint)
        try:
            with fit_heartbeat(fit_id=fit_id, attempt=fit.attempt):
                point = fit_point(
                    fit.law,
                    data.observations,
                    objective=fit.objective,
                    seed=fit.pk,
                    screen_outliers=fit.screen_outliers,
                )
        except FitFailed as exc:
            _publish(fit, status=Fit.Status.FAILED, error=str(exc))
            return []
        state = pickle.dumps(point, protocol=pickle.HIGHEST_PROTOCOL)
        owned = Fit.objects.filter(pk=fit_id, status=Fit.Status.RUNNING, attempt=fit.attempt).update(
            point_state=state, draw_names=point.draw_names, heartbeat_at=timezone.now()
        )
        if not owned:
            return []
    done = set(FitChunk.objects.filter(fit_id=fit_id).values_list("index", flat=True))
    missing = [i for i in range(_chunk_count(fit)) if i not in done]
    if not missing:
        fit_finish(fit_id=fit_id)
    return missing


def _chunk_count(fit: Fit) -> int:
    return math.ceil(fit.n_bootstrap / fit.chunk_size) if fit.n_bootstrap else 0


def fit_compute_chunk(*, fit_id: int, index: int) -> bool:
    """Compute one chunk of bootstrap draws; True when it was the last one missing (time to finish).

    Idempotent: a chunk already stored, or being computed by another worker, or a fit no longer running, is
    left alone.
    """
    fit = Fit.objects.defer("draws", "snapshot").filter(pk=fit_id, status=Fit.Status.RUNNING).first()
    if fit is None or fit.point_state is None or FitChunk.objects.filter(fit_id=fit_id, index=index).exists():
        return False
    point = pickle.loads(bytes(fit.point_state))  # written by fit_execute into our own database
    start = index * fit.chunk_size
    count = min(fit.chunk_size, fit.n_bootstrap - start)
    with chunk_in_progress(fit_id=fit_id, index=index) as mine:
        if not mine:  # another worker computes it right now (a re-sent copy), or it was just stored
            return False
        draws = bootstrap_chunk(point, start=start, count=count)
    FitChunk.objects.bulk_create(
        [FitChunk(fit_id=fit_id, index=index, draws=np.ascontiguousarray(draws, dtype=np.float64).tobytes())],
        ignore_conflicts=True,  # a duplicate delivery computed it too: either copy is the same
    )
    Fit.objects.filter(pk=fit_id, status=Fit.Status.RUNNING).update(heartbeat_at=timezone.now())
    return FitChunk.objects.filter(fit_id=fit_id).count() >= _chunk_count(fit)


def fit_finish(*, fit_id: int) -> bool:
    """Assemble the stored chunks into the finished fit; True if this call published it."""
    fit = Fit.objects.defer("snapshot").filter(pk=fit_id, status=Fit.Status.RUNNING).first()
    if fit is None or fit.point_state is None:
        return False
    chunks = list(FitChunk.objects.filter(fit_id=fit_id).order_by("index").values_list("draws", flat=True))
    if len(chunks) < _chunk_count(fit):
        return False
    point = pickle.loads(bytes(fit.point_state))
    width = len(point.draw_names)
    draws = (
        np.concatenate([np.frombuffer(bytes(c), dtype=np.float64).reshape(-1, width) for c in chunks])
        if chunks
        else np.zeros((0, width))
    )
    with fit_heartbeat(fit_id=fit_id):
        result = assemble_fit(point, draws)
    return _publish(fit, status=Fit.Status.SUCCEEDED, **Fit.result_fields(result, run_ids=fit.run_ids))


def _publish(fit: Fit, *, status: str, **fields: Any) -> bool:
    """Finish a fit, conditional on it still running: a second publisher changes nothing."""
    fields = {k: v if isinstance(v, bytes) else json_safe(v) for k, v in fields.items()}
    published = Fit.objects.filter(pk=fit.pk, status=Fit.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), point_state=None, **fields
    )
    if published:
        FitChunk.objects.filter(fit_id=fit.pk).delete()
    return bool(published)


# The sweep (beat): anything lost ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    scope_ids: list[int]
    fit_ids: list[int]


def fits_sweep(*, limit: int = 100) -> SweepResult:
    """Find refits whose message was lost: dirty scopes with no message on its way (or one sent long ago),
    queued fits nobody claimed, running fits whose worker went silent. The caller re-sends them.

    A scope's message on its way refreshes `enqueued_at` at each step (fit_scope_refresh re-sends itself after at
    most FIT_DEBOUNCE_SECONDS), so one silent for FIT_DEBOUNCE_SECONDS + FIT_SWEEP_GRACE_SECONDS was lost (e.g.
    with a Redis that restarted empty). Taking one for lost too early costs a duplicate message, which finds
    nothing to do."""
    now = timezone.now()
    lost_after = now - timedelta(seconds=settings.FIT_DEBOUNCE_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS)
    scopes = list(
        FitScope.objects.filter(dirty_since__isnull=False)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=lost_after))
        .order_by("dirty_since")
        .values_list("id", flat=True)[:limit]
    )
    FitScope.objects.filter(pk__in=scopes).update(enqueued_at=now)
    queued_before = now - timedelta(seconds=settings.FIT_SWEEP_GRACE_SECONDS)
    fits = list(
        Fit.objects.filter(
            Q(status=Fit.Status.QUEUED, created_at__lt=queued_before)
            | Q(status=Fit.Status.RUNNING, heartbeat_at__lt=_stuck_before())
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    return SweepResult(scope_ids=scopes, fit_ids=fits)
