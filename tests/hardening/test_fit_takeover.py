"""A fit whose worker died is taken over within about two minutes; a healthy one, however long its step, never.

Step level: fits.heartbeat keeps a running fit's heartbeat fresh while a step computes, so the sweep's
takeover threshold (FIT_STUCK_AFTER_SECONDS) can be short. The real-worker form (a killed worker's fit finished
by another; a healthy worker on a step longer than the threshold never taken over) is in tests/workers.
"""

import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from config.settings import base
from fits import pipeline
from fits.heartbeat import chunk_in_progress, fit_heartbeat
from fits.models import Fit, FitChunk
from fits.pipeline import fit_compute_chunk, fit_execute, fits_sweep
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat writes from its own thread and connection


def test_the_default_settings_take_over_a_silent_fit_within_about_two_minutes():
    # Worst case from the last heartbeat: the threshold plus one sweep interval.
    sweep_every = base.CELERY_BEAT_SCHEDULE["sweep-fits"]["schedule"]
    assert base.FIT_STUCK_AFTER_SECONDS + sweep_every <= 150
    # ... and a healthy worker beats several times within the threshold (a slow write is not a death).
    assert 0 < base.FIT_HEARTBEAT_SECONDS * 3 <= base.FIT_STUCK_AFTER_SECONDS


def _running_fit(**fields):
    team = TeamFactory.create(slug="beat")
    return Fit.objects.create(
        team=team,
        family="f",
        law="chinchilla",
        version=1,
        status=Fit.Status.RUNNING,
        attempt=1,
        heartbeat_at=timezone.now() - timedelta(hours=1),
        **fields,
    )


def test_the_heartbeat_ticks_while_a_step_computes_and_stops_after():
    fit = _running_fit()
    with fit_heartbeat(fit_id=fit.pk, attempt=1, every=0.05):
        time.sleep(0.4)
        during = Fit.objects.get(pk=fit.pk).heartbeat_at
    assert timezone.now() - during < timedelta(seconds=1)
    time.sleep(0.2)
    after = Fit.objects.get(pk=fit.pk).heartbeat_at
    time.sleep(0.2)
    assert Fit.objects.get(pk=fit.pk).heartbeat_at == after  # stopped with the step


def test_a_taken_over_attempt_no_longer_beats_for_the_fit():
    fit = _running_fit()
    Fit.objects.filter(pk=fit.pk).update(attempt=2)  # the sweep handed it to another worker
    stale = Fit.objects.get(pk=fit.pk).heartbeat_at
    with fit_heartbeat(fit_id=fit.pk, attempt=1, every=0.05):
        time.sleep(0.3)
    assert Fit.objects.get(pk=fit.pk).heartbeat_at == stale


def test_a_point_fit_longer_than_the_threshold_is_never_seen_silent(settings, monkeypatch):
    settings.FIT_STUCK_AFTER_SECONDS = 1
    settings.FIT_HEARTBEAT_SECONDS = 0.1
    team = TeamFactory.create(slug="long")
    fit = Fit.objects.create(team=team, family="f", law="chinchilla", version=1)  # queued
    seen: list[list[int]] = []

    def slow_point_fit(*args, **kwargs):
        for _ in range(4):  # 2 s: twice the takeover threshold
            time.sleep(0.5)
            seen.append(fits_sweep().fit_ids)
        raise pipeline.FitFailed("stopped here: the test is about the heartbeat, not the fit")

    monkeypatch.setattr(pipeline, "fit_point", slow_point_fit)
    monkeypatch.setattr(pipeline.FitData, "from_bytes", staticmethod(lambda *args, **kwargs: _NoData()))
    assert fit_execute(fit_id=fit.pk) == []
    assert len(seen) == 4
    assert all(fit.pk not in ids for ids in seen)
    fit.refresh_from_db()
    assert (fit.status, fit.attempt) == ("failed", 1)


class _NoData:
    observations = None


def test_a_silent_fit_is_taken_over_once_the_threshold_passes(settings):
    settings.FIT_STUCK_AFTER_SECONDS = 60
    fit = _running_fit()
    Fit.objects.filter(pk=fit.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=59))
    assert fit.pk not in fits_sweep().fit_ids
    Fit.objects.filter(pk=fit.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert fit.pk in fits_sweep().fit_ids


def test_a_chunk_already_stored_is_not_computed_again():
    fit = _running_fit()
    FitChunk.objects.create(fit=fit, index=0, draws=b"")
    with chunk_in_progress(fit_id=fit.pk, index=0) as mine:
        assert not mine
    with chunk_in_progress(fit_id=fit.pk, index=1) as mine:
        assert mine


def test_a_chunk_of_a_fit_no_longer_running_is_left_alone():
    fit = _running_fit()
    Fit.objects.filter(pk=fit.pk).update(status=Fit.Status.SUCCEEDED)
    assert fit_compute_chunk(fit_id=fit.pk, index=0) is False


@pytest.mark.integration
def test_a_chunk_another_worker_is_computing_is_not_computed_again():
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the suite on PostgreSQL (DATABASE_URL=postgres://...)")
        pytest.skip("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")
    fit = _running_fit()
    holding, release, answers = threading.Event(), threading.Event(), []

    def other_worker():
        try:
            with chunk_in_progress(fit_id=fit.pk, index=3) as mine:
                answers.append(mine)
                holding.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert holding.wait(timeout=10)
    with chunk_in_progress(fit_id=fit.pk, index=3) as mine:
        assert not mine  # the re-sent copy leaves it to the worker computing it
    with chunk_in_progress(fit_id=fit.pk, index=4) as mine:
        assert mine
    release.set()
    thread.join(timeout=10)
    assert answers == [True]
    with chunk_in_progress(fit_id=fit.pk, index=3) as mine:
        assert mine  # released: a later copy may compute it (it was never stored)
