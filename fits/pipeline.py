"""The refit pipeline: a family's change (written by runs), debounce, snapshot, claim, compute in chunks,
publish, sweep.

The workers call these steps through thin tasks (workers/tasks.py); nothing here needs a broker, so every step
can be tested by calling it. A fit moves queued -> running -> succeeded | failed, and each step is a
conditional UPDATE, so a duplicate or late message finds nothing to do. The two steps that start the next one
after their transaction commits send it by task name through config.dispatch; this module imports no task.
"""

import logging
import math
import pickle
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config import dispatch
from fits.curve_pipeline import curve_scope_mark
from fits.heartbeat import chunk_in_progress, fit_heartbeat
from fits.json_numbers import json_safe
from fits.laws import LAWS, FitFailed, assemble_fit, bootstrap_chunk, fit_point
from fits.models import Fit, FitChunk, FitScope
from fits.references import density_reference_refresh
from fits.selectors import FitData, fit_data, fit_latest
from runs.models import FamilyChange

logger = logging.getLogger(__name__)

try:
    CODE_VERSION = f"bitscale {version('bitscale')}"
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    CODE_VERSION = "bitscale dev"


# Step 1 (default queue): debounce, snapshot, queue a version per law -------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refit request did: the fits it queued, whether to ask again later, and the laws it had to defer
    because a fit of theirs was still in flight (each retried on its own: fit_scope_refresh)."""

    fit_ids: tuple[int, ...] = ()
    retry_in: float | None = None
    deferred_scope_ids: tuple[int, ...] = ()

    @property
    def fit_id(self) -> int | None:
        return self.fit_ids[0] if self.fit_ids else None


def fit_family_refresh(*, team_id: int, family: str) -> RefreshOutcome:
    """Turn a family's pending change (runs.models.FamilyChange) into a queued fit version of every law whose
    data changed, once the changes have paused.

    1. Debounce: wait until FIT_DEBOUNCE_SECONDS passed since the last change, at most FIT_MAX_WAIT_SECONDS
       since the first pending one.
    2. Under the change row's lock (writers of the family wait), snapshot the runs once. For each law: data
       equal to its last version's (same fingerprint) queues nothing; a law with a fit in flight is marked dirty
       and deferred (its next version starts once that one is done); otherwise a queued version holds the
       snapshot and is sent to the fits queue after commit.
    3. The change is caught up (pending and announced cleared), in the same transaction.
    """
    now = timezone.now()
    change = FamilyChange.objects.filter(team_id=team_id, family=family).first()
    if change is None or change.pending_since is None:
        FamilyChange.objects.filter(team_id=team_id, family=family, pending_since__isnull=True).update(
            announced_at=None
        )
        return RefreshOutcome()
    ready_at = min(
        change.changed_at + timedelta(seconds=settings.FIT_DEBOUNCE_SECONDS),
        change.pending_since + timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS),
    )
    if ready_at > now:
        return RefreshOutcome(retry_in=(ready_at - now).total_seconds())  # our message stays announced

    fit_ids: list[int] = []
    deferred: list[int] = []
    with transaction.atomic():
        change = FamilyChange.objects.select_for_update().get(pk=change.pk)
        data = fit_data(team_id=team_id, family=family)
        for law in LAWS:
            scope = _scope_get(team_id=team_id, family=family, law=law)
            if Fit.objects.filter(team_id=team_id, family=family, law=law).in_flight().exists():
                FitScope.objects.filter(pk=scope.pk).update(
                    dirty_since=Coalesce("dirty_since", Value(change.pending_since)), enqueued_at=now
                )
                deferred.append(scope.pk)
                continue
            fit_id = _version_queue(scope=scope, data=data, force=False)
            if fit_id is not None:
                fit_ids.append(fit_id)
        curve_scope_mark(team_id=team_id, family=family, since=change.pending_since)  # its curve fits follow
        FamilyChange.objects.filter(pk=change.pk).update(pending_since=None, announced_at=None)
    return RefreshOutcome(fit_ids=tuple(fit_ids), deferred_scope_ids=tuple(deferred))


def _scope_get(*, team_id: int, family: str, law: str) -> FitScope:
    try:
        with transaction.atomic():
            scope, _ = FitScope.objects.get_or_create(team_id=team_id, family=family, law=law)
    except IntegrityError:  # a concurrent request created it first
        scope = FitScope.objects.get(team_id=team_id, family=family, law=law)
    return scope


def fit_scope_refresh(*, scope_id: int, force: bool = False) -> RefreshOutcome:
    """Queue a version of one law when its data changed: a law deferred by fit_family_refresh (a fit of it was
    in flight), or an explicit request (`force`, POST /fits/: a version even when nothing changed and the law
    has nothing it can fit, so that the failure says why). A fit still in flight means "later"."""
    scope = FitScope.objects.filter(pk=scope_id).first()
    if scope is None or (scope.dirty_since is None and not force):
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=None)
        return RefreshOutcome()
    in_flight = Fit.objects.filter(team_id=scope.team_id, family=scope.family, law=scope.law).in_flight()
    if in_flight.exists():  # the next version starts once this one is done
        FitScope.objects.filter(pk=scope_id).update(enqueued_at=timezone.now())  # our message is still on its way
        return RefreshOutcome(retry_in=max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0))
    with transaction.atomic():
        scope = FitScope.objects.select_for_update().get(pk=scope_id)
        data = fit_data(team_id=scope.team_id, family=scope.family)
        fit_id = _version_queue(scope=scope, data=data, force=force)
    return RefreshOutcome(fit_ids=() if fit_id is None else (fit_id,))


def _version_queue(*, scope: FitScope, data: FitData, force: bool) -> int | None:
    """Inside a transaction: record `data` as the scope's snapshot and queue a new version of its law when the
    data or the settings changed; the version is sent to the fits queue after commit. None when nothing was
    queued (nothing changed, or nothing is there to fit)."""
    last = fit_latest(team_id=scope.team_id, family=scope.family, law=scope.law)
    FitScope.objects.filter(pk=scope.pk).update(dirty_since=None, enqueued_at=None, fingerprint=data.fingerprint)
    same_settings = last is not None and (last.objective, last.screen_outliers) == (
        scope.objective,
        scope.screen_outliers,
    )
    if last is not None and last.data_fingerprint == data.fingerprint and same_settings:
        return None  # the runs and settings are as the last version saw them: no duplicate
    if last is None and (data.n_runs == 0 or (not force and not data.law_applies(scope.law))):
        # Nothing was ever fitted and nothing is there to fit: no runs, or none the law applies to. An explicit
        # request (force) still makes a version, which fails with the reason.
        return None
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
    return fit.pk


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
        if status == Fit.Status.SUCCEEDED:
            density_reference_refresh(team_id=fit.team_id, family=fit.family)
    return bool(published)


# The sweep (beat): anything lost ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    families: list[tuple[int, str]]
    scope_ids: list[int]
    fit_ids: list[int]


def fits_sweep(*, limit: int = 100, undelivered_since: datetime | None = None) -> SweepResult:
    """Find refits whose message was lost: pending family changes with no message on its way (or one sent long
    ago), deferred laws likewise, queued fits nobody claimed, running fits whose worker went silent. The caller
    re-sends them.

    A family's message is lost when announced more than FIT_MAX_WAIT_SECONDS + FIT_SWEEP_GRACE_SECONDS ago (it
    may wait out the debounce that long). A deferred law's message refreshes `enqueued_at` at each step, which
    is at most FIT_DEBOUNCE_SECONDS apart, so it is lost after FIT_DEBOUNCE_SECONDS + FIT_SWEEP_GRACE_SECONDS.
    `undelivered_since`: the broker was unreachable from then on (a worker that got it back asks, see
    config.celery), so whatever was announced since never left and is re-sent at once. Taking a message for
    lost too early costs a duplicate, which finds nothing to do.
    """
    now = timezone.now()
    lost_after = now - timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS)
    step_lost_after = now - timedelta(seconds=settings.FIT_DEBOUNCE_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS)
    never_left = Q(announced_at__gte=undelivered_since) if undelivered_since else Q(pk__in=[])
    changes = list(
        FamilyChange.objects.filter(pending_since__isnull=False)
        .filter(Q(announced_at__isnull=True) | Q(announced_at__lt=lost_after) | never_left)
        .order_by("pending_since")
        .values_list("id", "team_id", "family")[:limit]
    )
    FamilyChange.objects.filter(pk__in=[pk for pk, _, _ in changes]).update(announced_at=now)
    scope_never_left = Q(enqueued_at__gte=undelivered_since) if undelivered_since else Q(pk__in=[])
    scopes = list(
        FitScope.objects.filter(dirty_since__isnull=False)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=step_lost_after) | scope_never_left)
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
    return SweepResult(families=[(team_id, family) for _, team_id, family in changes], scope_ids=scopes, fit_ids=fits)
