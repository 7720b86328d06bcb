"""Celery tasks: thin, explicitly named, ids as arguments; each calls one fits.pipeline step.

A task that starts the next step sends it itself; the names are the ones config.dispatch uses.
"""

from collections.abc import Iterable

from celery import Task, group, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils.dateparse import parse_datetime

from config import dispatch
from fits.curve_pipeline import curve_fits_sweep, curve_scope_refresh
from fits.forecasts import forecast_refresh
from fits.pipeline import (
    fit_compute_chunk,
    fit_execute,
    fit_family_refresh,
    fit_finish,
    fit_scope_refresh,
    fits_sweep,
)
from fits.review import fit_plots_prerender, plots_cache_is_shared
from workers.queues import Queue

# Transient database trouble only: bad data is an outcome (a failed fit), never a retry.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": INFRASTRUCTURE_ERRORS, "retry_backoff": True, "retry_backoff_max": 60, "max_retries": 8}


@shared_task(name=dispatch.REFIT_FAMILY, queue=Queue.DEFAULT, acks_late=True, ignore_result=True, **RETRY)
def refit_family(*, team_id: int, family: str) -> None:
    """Debounced refit of a family whose runs changed: queue a new version of every law whose data changed."""
    outcome = fit_family_refresh(team_id=team_id, family=family)
    if outcome.retry_in is not None:
        refit_family.apply_async(kwargs={"team_id": team_id, "family": family}, countdown=outcome.retry_in)
    wait = max(float(settings.FIT_DEBOUNCE_SECONDS), 1.0)
    for scope_id in outcome.deferred_scope_ids:  # a fit of that law is in flight: its next version waits for it
        refit_scope.apply_async(kwargs={"scope_id": scope_id}, countdown=wait)


@shared_task(name=dispatch.REFIT_SCOPE, queue=Queue.DEFAULT, acks_late=True, ignore_result=True, **RETRY)
def refit_scope(*, scope_id: int) -> None:
    """Refit of one (team, family, law) deferred while a fit of it was in flight: queue a version if needed."""
    outcome = fit_scope_refresh(scope_id=scope_id)
    if outcome.retry_in is not None:
        refit_scope.apply_async(kwargs={"scope_id": scope_id}, countdown=outcome.retry_in)


@shared_task(name=dispatch.RUN_FIT, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def run_fit(*, fit_id: int) -> None:
    """Point fit of a queued fit, then its bootstrap chunks spread over every worker of the fits queue."""
    missing = fit_execute(fit_id=fit_id)
    if missing:
        group(run_fit_chunk.s(fit_id=fit_id, index=index) for index in missing).apply_async()


@shared_task(name=dispatch.RUN_FIT_CHUNK, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def run_fit_chunk(*, fit_id: int, index: int) -> None:
    """One chunk of bootstrap draws; the chunk that completes the set sends the assembly."""
    if fit_compute_chunk(fit_id=fit_id, index=index):
        finish_fit.apply_async(kwargs={"fit_id": fit_id})


@shared_task(name=dispatch.FINISH_FIT, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def finish_fit(*, fit_id: int) -> None:
    """Assemble the draws into intervals and publish the fit (once, however often it is delivered); then have its
    plots rendered for the admin, when the web processes share the cache."""
    if fit_finish(fit_id=fit_id) and plots_cache_is_shared():
        dispatch.send(dispatch.RENDER_FIT_PLOTS, fit_id=fit_id)


@shared_task(name=dispatch.RENDER_FIT_PLOTS, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def render_fit_plots(*, fit_id: int) -> None:
    """Render a published fit's admin plots into the shared cache (a lost message only means the first reviewer
    waits for them)."""
    fit_plots_prerender(fit_id=fit_id)


@shared_task(name=dispatch.REFRESH_FORECAST, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def refresh_forecast(*, run_id: int) -> None:
    """Recompute a run's forecast into the shared cache after new points (a lost message only means the next
    reader computes it)."""
    forecast_refresh(run_id=run_id)


@shared_task(name=dispatch.SWEEP_FITS, queue=Queue.DEFAULT, ignore_result=True)
def sweep_fits(*, undelivered_since: str | None = None) -> None:
    """Re-send refits whose message was lost (e.g. the broker was down) and fits whose worker died;
    `undelivered_since` (ISO 8601): the broker was unreachable from then on, so nothing announced since left."""
    since = parse_datetime(undelivered_since) if undelivered_since else None
    found = fits_sweep(undelivered_since=since)
    for team_id, family in found.families:
        dispatch.send(refit_family.name, team_id=team_id, family=family)
    _send_each(refit_scope, "scope_id", found.scope_ids)
    _send_each(run_fit, "fit_id", found.fit_ids)
    _send_each(refit_curves, "scope_id", curve_fits_sweep())


@shared_task(name=dispatch.REFIT_CURVES, queue=Queue.FITS, acks_late=True, ignore_result=True, **RETRY)
def refit_curves(*, scope_id: int) -> None:
    """Refit the curve laws of a family whose training curves changed (fits.curve_pipeline); ask again later while a
    version is in flight or when a change came while it computed."""
    outcome = curve_scope_refresh(scope_id=scope_id)
    if outcome.retry_in is not None:
        refit_curves.apply_async(kwargs={"scope_id": scope_id}, countdown=outcome.retry_in)


def _send_each(task: Task, key: str, ids: Iterable[int]) -> None:
    for value in ids:
        dispatch.send(task.name, **{key: value})
