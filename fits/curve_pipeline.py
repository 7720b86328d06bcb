"""Curve fits of a family (docs/curves.md, "Stored curve fits"): mark a family's curves dirty, gather its runs'
loss and lr histories, fit every curve law and store each as an immutable version, and sweep up lost messages.

A family's curves are marked in the transaction that takes its change (fits.pipeline.fit_family_refresh, itself
debounced; metric points mark the family's change like any run write), and one refresh message per family is on
its way at a time (CurveScope.enqueued_at). The refresh computes a cheap fingerprint of the histories first, and
refits only the laws whose last version saw other data. A version moves running -> succeeded | failed by
conditional UPDATEs: a duplicate or late message finds nothing to do, and a finished version is never changed.
Fitting failures are outcomes (stored failed, with the reason), never raised. Nothing here needs a broker; the
workers call it through thin tasks (workers.tasks.refit_curves) by the names in config.dispatch.
"""

import hashlib
import json
import logging
import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config import dispatch
from fits.heartbeat import heartbeat
from fits.json_numbers import json_safe
from fits.laws.curve_family import curve_laws, family_curve_refusal, fit_family_curves
from fits.laws.forecast import FamilyRun
from fits.laws.observations import FitFailed
from fits.laws.schedules import Schedule, ScheduleError, build_schedule, schedule_from_log, schedule_spec
from fits.models import CurveScope, FamilyCurveFit
from runs.models import MetricPoint, Run
from runs.services import CURVE_LOSS_KEYS, LR_KEY

logger = logging.getLogger(__name__)

try:  # as fits.pipeline names it (that module imports this one, so this one cannot import it)
    CODE_VERSION = f"bitscale {version('bitscale')}"
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    CODE_VERSION = "bitscale dev"

# The loss metric a family's curves are read from is the first of CURVE_LOSS_KEYS that a run of the family logs (the
# same key for every run, so that sizes share a meaning of L0); the learning rate is the LR_KEY metric.
# Runs in these states do not describe a healthy curve.
SKIPPED_STATUSES = (Run.Status.DIVERGED,)


# Marking ----------------------------------------------------------------------------------------------------


def curve_scope_mark(*, team_id: int, family: str, since: datetime | None = None) -> None:
    """Mark the family's curves dirty and, when no refresh is on its way, send one after commit. Call inside the
    transaction that takes the family's change."""
    now = timezone.now()
    scope = _scope_get(team_id=team_id, family=family)
    CurveScope.objects.filter(pk=scope.pk).update(
        dirty_since=Coalesce("dirty_since", Value(since or now)), changed_at=now
    )
    if CurveScope.objects.filter(pk=scope.pk, enqueued_at__isnull=True).update(enqueued_at=now):
        transaction.on_commit(partial(dispatch.send, dispatch.REFIT_CURVES, scope_id=scope.pk))


def _scope_get(*, team_id: int, family: str) -> CurveScope:
    try:
        with transaction.atomic():
            scope, _ = CurveScope.objects.get_or_create(team_id=team_id, family=family)
    except IntegrityError:  # a concurrent mark created it first
        scope = CurveScope.objects.get(team_id=team_id, family=family)
    return scope


# The family's curves ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveFamilyData:
    """What a family's curve fit reads: the loss key, the runs (FamilyRuns with their histories), the runs left
    out before fitting (no lr history, a schedule that cannot be built) with the reason, and the fingerprint."""

    loss_key: str
    runs: list[FamilyRun]
    run_ids: list[int]
    left_out: dict[str, str]
    fingerprint: str


def _candidate_runs(*, team_id: int, family: str) -> Any:
    return Run.objects.filter(team_id=team_id, family=family, excluded=False).exclude(status__in=SKIPPED_STATUSES)


def curve_family_fingerprint(*, team_id: int, family: str) -> tuple[str, str]:
    """(loss key, fingerprint) of the family's curve data, in one grouped query: per run, its size, its trunk (a
    cooldown shares its trunk's lineage, so a new link changes the held-out score), its described schedule (read
    when it logs no `lr`) and, per curve key, the count and last id of its points (histories are append-only, so
    these change whenever one does)."""
    runs = {
        pk: (n_params, trunk, json.dumps(schedule, sort_keys=True))
        for pk, n_params, trunk, schedule in _candidate_runs(team_id=team_id, family=family).values_list(
            "pk", "n_params", "cooldown_of_id", "schedule"
        )
    }
    stats = (
        MetricPoint.objects.filter(run_id__in=list(runs), key__in=[*CURVE_LOSS_KEYS, LR_KEY])
        .order_by()
        .values("run_id", "key")
        .annotate(n=Count("id"), last=Max("id"))
        .values_list("run_id", "key", "n", "last")
    )
    rows = sorted(stats)
    logged = {key for _, key, _, _ in rows}
    loss_key = next((key for key in CURVE_LOSS_KEYS if key in logged), "")
    used = sorted((run_id, *runs[run_id], key, n, last) for run_id, key, n, last in rows if key in (loss_key, LR_KEY))
    digest = hashlib.sha256(json.dumps([loss_key, used]).encode()).hexdigest()
    return loss_key, digest


def _history(run_id: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's (steps, values) of one key, NaN (stored NULL) included as NaN."""
    rows = list(
        MetricPoint.objects.filter(run_id=run_id, key=key)
        .order_by("step", "timestamp", "id")
        .values_list("step", "value")
    )
    if not rows:
        return np.zeros(0), np.zeros(0)
    steps = np.fromiter((s for s, _ in rows), dtype=np.float64, count=len(rows))
    values = np.fromiter((math.nan if v is None else v for _, v in rows), dtype=np.float64, count=len(rows))
    return steps, values


def _schedule_of(run_id: int, steps: np.ndarray, described: Any) -> tuple[Schedule | None, str]:
    """(schedule, "") of a run's seen steps: its logged `lr` (the past as it was), else its described schedule
    (Run.schedule: a native client that describes the plan and logs no rate); (None, why) when neither gives one."""
    lr_steps, lrs = _history(run_id, LR_KEY)
    ok = np.isfinite(lrs)
    if np.any(ok):
        try:
            return schedule_from_log(
                lr_steps[ok], lrs[ok], total_steps=int(max(lr_steps[ok].max(), steps.max(), 1))
            ), ""
        except ScheduleError as exc:
            return None, f"its {LR_KEY} history defines no schedule: {exc}"
    spec = schedule_spec(described)
    if spec is None:
        return None, f"no {LR_KEY} history and no described schedule: its schedule is unknown"
    try:
        return build_schedule(spec), ""
    except ScheduleError as exc:
        return None, f"no {LR_KEY} history, and its described schedule cannot be used: {exc}"


def curve_family_data(*, team_id: int, family: str) -> CurveFamilyData:
    """The family's runs as a curve fit takes them: each run's loss history under the family's loss key, its
    schedule from its logged `lr` points (the log's past; a run's planned rest is not needed to fit what was
    seen), or from its described schedule when it logs no `lr`; its size as its group; a trunk and its cooldowns
    (Run.cooldown_of) one lineage. Runs without a schedule either way, or whose lr log or description cannot
    define one, are left out with the reason."""
    loss_key, fingerprint = curve_family_fingerprint(team_id=team_id, family=family)
    runs: list[FamilyRun] = []
    run_ids: list[int] = []
    left_out: dict[str, str] = {}
    if loss_key:
        rows = list(
            _candidate_runs(team_id=team_id, family=family)
            .order_by("pk")
            .values_list("pk", "n_params", "cooldown_of_id", "schedule")
        )
        trunks = {trunk for _, _, trunk, _ in rows if trunk is not None}
        for run_id, n_params, trunk_id, described in rows:
            steps, loss = _history(run_id, loss_key)
            if not steps.shape[0]:
                continue  # no curve logged: not a curve run
            schedule, why = _schedule_of(run_id, steps, described)
            if schedule is None:
                left_out[str(run_id)] = why
                continue
            # A trunk and the cooldowns branched off it share history: one lineage, so in the held-out score
            # neither lends to the other (the lender would carry the target's future).
            lineage = f"trunk-{trunk_id}" if trunk_id is not None else (f"trunk-{run_id}" if run_id in trunks else "")
            runs.append(
                FamilyRun(
                    run=str(run_id), group=str(n_params), steps=steps, loss=loss, schedule=schedule, lineage=lineage
                )
            )
            run_ids.append(run_id)
    return CurveFamilyData(loss_key, runs, run_ids, left_out, fingerprint)


# Refresh ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveRefreshOutcome:
    """What a refresh did: the versions it stored, and when to ask again (a fit in flight, or a change that came
    while it computed)."""

    fit_ids: tuple[int, ...] = ()
    retry_in: float | None = None


def _stuck_before() -> datetime:
    return timezone.now() - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS)


def curve_scope_refresh(*, scope_id: int) -> CurveRefreshOutcome:
    """Refit the family's curve laws whose data changed since their last version, then clear the scope if no
    change came meanwhile.

    1. A scope that is not dirty: nothing to do (its message is consumed).
    2. A version still running with a fresh heartbeat: ask again later. One whose worker went silent for
       FIT_STUCK_AFTER_SECONDS is failed (its worker died) and the family refitted.
    3. The fingerprint (one grouped query) against each law's last version: equal means no new version. Otherwise
       the histories are read once, and each changed law gets a running version, fitted and published; except
       when the family still cannot be fitted for the reason its last version failed with (a family before its
       first decay, logging on: one failed version says why, not one per batch).
    4. The scope is cleared, conditional on no mark since step 1; else the caller asks again.
    """
    scope = CurveScope.objects.filter(pk=scope_id).first()
    if scope is None or scope.dirty_since is None:
        CurveScope.objects.filter(pk=scope_id).update(enqueued_at=None)
        return CurveRefreshOutcome()
    marked_at = scope.changed_at
    active = FamilyCurveFit.objects.filter(
        team_id=scope.team_id,
        family=scope.family,
        status__in=[FamilyCurveFit.Status.QUEUED, FamilyCurveFit.Status.RUNNING],
    )
    for fit in active.filter(Q(heartbeat_at__lt=_stuck_before()) | Q(heartbeat_at__isnull=True)):
        _publish(fit.pk, attempt=fit.attempt, status=FamilyCurveFit.Status.FAILED, error="its worker stopped")
    if active.exists():
        CurveScope.objects.filter(pk=scope_id).update(enqueued_at=timezone.now())
        return CurveRefreshOutcome(retry_in=max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0))

    loss_key, fingerprint = curve_family_fingerprint(team_id=scope.team_id, family=scope.family)
    stale = [
        law
        for law in curve_laws()
        if (last := _latest(scope.team_id, scope.family, law)) is None or last.data_fingerprint != fingerprint
    ]
    fit_ids: list[int] = []
    if stale and (loss_key or any(_latest(scope.team_id, scope.family, law) for law in stale)):
        data = curve_family_data(team_id=scope.team_id, family=scope.family)
        refusal = family_curve_refusal(data.runs)
        for law in stale:
            last = _latest(scope.team_id, scope.family, law)
            if refusal is not None and last is not None and (last.status, last.error) == ("failed", refusal):
                continue  # still not fittable, for the same reason: no new version until that changes
            fit_id = _version_fit(scope=scope, law=law, data=data)
            if fit_id is not None:
                fit_ids.append(fit_id)
    cleared = CurveScope.objects.filter(pk=scope_id, changed_at=marked_at).update(dirty_since=None, enqueued_at=None)
    if not cleared:  # a change came while we computed: its mark stays, and our message asks again
        CurveScope.objects.filter(pk=scope_id).update(enqueued_at=timezone.now())
        return CurveRefreshOutcome(fit_ids=tuple(fit_ids), retry_in=max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0))
    return CurveRefreshOutcome(fit_ids=tuple(fit_ids))


def _latest(team_id: int, family: str, law: str) -> FamilyCurveFit | None:
    return FamilyCurveFit.objects.filter(team_id=team_id, family=family, law=law).order_by("-version").first()


def _version_fit(*, scope: CurveScope, law: str, data: CurveFamilyData) -> int | None:
    """Store a running version of `law` on `data`, fit it and publish it; None when another worker holds one."""
    last = _latest(scope.team_id, scope.family, law)
    now = timezone.now()
    try:
        with transaction.atomic():
            fit = FamilyCurveFit.objects.create(
                team_id=scope.team_id,
                family=scope.family,
                law=law,
                version=(last.version if last else 0) + 1,
                status=FamilyCurveFit.Status.RUNNING,
                loss_key=data.loss_key,
                run_ids=data.run_ids,
                data_fingerprint=data.fingerprint,
                code_version=CODE_VERSION,
                attempt=1,
                started_at=now,
                heartbeat_at=now,
            )
    except IntegrityError:  # another worker stored this version, or holds one in flight
        return None
    try:
        with _heartbeat(fit.pk):
            result = fit_family_curves(data.runs, law=law)
    except FitFailed as exc:
        _publish(fit.pk, attempt=1, status=FamilyCurveFit.Status.FAILED, error=str(exc), left_out=data.left_out)
        return fit.pk
    except Exception as exc:  # a fitting bug is stored as the reason, not raised into the workers' retries
        logger.exception("curve fit %s of %s/%s failed", fit.pk, scope.family, law)
        _publish(fit.pk, attempt=1, status=FamilyCurveFit.Status.FAILED, error=f"the curve fit raised {exc!r}")
        return fit.pk
    _publish(
        fit.pk,
        attempt=1,
        status=FamilyCurveFit.Status.SUCCEEDED,
        params=result.params,
        intervals=result.intervals,
        metrics=result.metrics,
        run_metrics=result.run_metrics,
        heldout=result.heldout,
        warnings=result.warnings,
        left_out={**data.left_out, **result.left_out},
    )
    return fit.pk


def _heartbeat(fit_id: int) -> AbstractContextManager[None]:
    """Keep a running version's heartbeat fresh while it computes (fits.heartbeat's thread), so only a silent one,
    whose worker died, is failed by the next refresh."""

    def touch() -> bool:
        running = FamilyCurveFit.objects.filter(pk=fit_id, status=FamilyCurveFit.Status.RUNNING)
        return bool(running.update(heartbeat_at=timezone.now()))

    return heartbeat(touch, label=f"curve-fit-{fit_id}")


def curve_fit_publish(*, fit_id: int, attempt: int, status: str, **fields: Any) -> bool:
    """Finish a running version (of this attempt), once: a finished version is never changed (False)."""
    return _publish(fit_id, attempt=attempt, status=status, **fields)


def _publish(fit_id: int, *, attempt: int, status: str, **fields: Any) -> bool:
    fields = {key: json_safe(value) for key, value in fields.items()}
    return bool(
        FamilyCurveFit.objects.filter(pk=fit_id, status=FamilyCurveFit.Status.RUNNING, attempt=attempt).update(
            status=status, finished_at=timezone.now(), **fields
        )
    )


# The sweep (beat) -------------------------------------------------------------------------------------------


def curve_fits_sweep(*, limit: int = 100) -> list[int]:
    """Dirty scopes whose refresh message is missing or late (lost with the broker, or with a worker that died
    computing it): their ids, to re-send; each is marked as sent now."""
    now = timezone.now()
    lost_after = now - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS)
    scopes = list(
        CurveScope.objects.filter(dirty_since__isnull=False)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=lost_after))
        .order_by("dirty_since")
        .values_list("id", flat=True)[:limit]
    )
    CurveScope.objects.filter(pk__in=scopes).update(enqueued_at=now)
    return scopes
