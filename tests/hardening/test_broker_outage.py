"""Redis, as compose uses it (broker in db 0, cache in db 1), stopped and started again under a stream of posts: no
5xx, every accepted post stored, no post waiting on the broker; and once Redis is back, a worker that got its
broker back has the refits announced during the outage re-sent at once, not after they count as lost.

A private redis-server (tests/redis_server.py); this process publishes to it for real (eager mode off).
"""

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from config import dispatch
from config.env import cache_config
from fits.models import Fit
from fits.pipeline import fits_sweep
from runs.models import FamilyChange, Run, Team
from runs.services import api_key_create
from tests.factories import payload
from tests.workers.celery_helpers import Worker, configure_celery, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
POSTS = 60


@pytest.fixture
def compose_redis(redis_server, settings) -> Iterator[Any]:
    """Broker and cache on the private Redis with the production settings for a Redis broker."""
    if redis_server.process is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url(0)).flushdb()
    saved = {
        key: getattr(settings, key)
        for key in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS")
    }
    settings.CACHES = {"default": cache_config(redis_server.url(1))}
    settings.API_RATE_LIMIT = "100000/min"  # counted in the Redis cache, as in compose
    configure_celery(
        settings,
        CELERY_TASK_ALWAYS_EAGER=False,
        CELERY_BROKER_URL=redis_server.url(0),
        CELERY_BROKER_TRANSPORT_OPTIONS=dict(settings.REDIS_BROKER_TRANSPORT_OPTIONS),
    )
    yield redis_server
    if redis_server.process is None:
        redis_server.start()
    configure_celery(settings, **saved)


def _client(team: Team) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team)[1]}")
    return client


def test_posts_through_a_redis_outage_are_all_stored_and_their_refits_stay_pending(compose_redis, team, monkeypatch):
    client = _client(team)
    published: list[tuple[str, bool]] = []
    send = dispatch.send

    def recorded(task_name: str, **kwargs: Any) -> bool:
        published.append((task_name, delivered := send(task_name, **kwargs)))
        return delivered

    monkeypatch.setattr(dispatch, "send", recorded)
    statuses: dict[str, int] = {}
    # The poster stops before its 11th and its 31st post until Redis has been stopped, then started again.
    stopped, started, reached = threading.Event(), threading.Event(), {10: threading.Event(), 30: threading.Event()}

    def post_all() -> None:
        try:
            for i in range(POSTS):
                if i in reached:
                    reached[i].set()
                    (stopped if i == 10 else started).wait(timeout=60)
                name = "before" if i < 10 else "down" if i < 30 else "after"
                # A new family per phase: its refit request is published (or not) during that phase.
                body = payload(external_id=f"{name}-{i}", family=f"fam-{name}")
                statuses[f"{name}-{i}"] = client.post("/api/v1/runs/", body, format="json").status_code
        finally:
            connection.close()

    poster = threading.Thread(target=post_all)
    poster.start()
    assert reached[10].wait(timeout=60)
    compose_redis.stop()
    stopped_at = timezone.now()
    stopped.set()
    assert reached[30].wait(timeout=60)
    health = client.get("/healthz")
    compose_redis.start()
    started.set()
    poster.join(timeout=120)
    assert not poster.is_alive()

    assert set(statuses.values()) == {201}, statuses  # no 5xx, nothing refused
    assert set(Run.objects.filter(team=team).values_list("external_id", flat=True)) == set(statuses)
    assert (health.status_code, health.json()["broker"]) == (200, "unavailable")
    # One refit message per family: before and after the outage delivered, during it not (the outage did fall
    # within the posts).
    assert published == [(dispatch.REFIT_FAMILY, True), (dispatch.REFIT_FAMILY, False), (dispatch.REFIT_FAMILY, True)]

    # The change is recorded and announced, but its message never left: only a sweep told since when the broker
    # was gone re-sends it now (the beat's plain sweep waits until it counts as lost).
    down = FamilyChange.objects.get(team=team, family="fam-down")
    assert down.pending_since is not None
    assert (team.pk, "fam-down") not in fits_sweep().families
    assert (team.pk, "fam-down") in fits_sweep(undelivered_since=stopped_at - timedelta(seconds=1)).families


def test_a_worker_that_gets_redis_back_has_the_outages_refits_sent_at_once(compose_redis, team, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs PostgreSQL")
    worker = Worker(compose_redis.url(0), FIT_BOOTSTRAP_DRAWS=10, FIT_CHUNK_SIZE=10)
    try:
        client = _client(team)
        compose_redis.stop()
        time.sleep(1)  # the worker sees its connection go
        bodies = [payload(external_id=f"down-{i}", family="outage", n_params=10**8 * (i + 1)) for i in range(4)]
        assert [client.post("/api/v1/runs/", body, format="json").status_code for body in bodies] == [201] * 4
        assert FamilyChange.objects.get(team=team, family="outage").pending_since is not None
        compose_redis.start()
        # No beat runs here, and the change is far from counting as lost (FIT_MAX_WAIT_SECONDS +
        # FIT_SWEEP_GRACE_SECONDS): only the reconnected worker's sweep can start these refits.
        wait_for(
            lambda: Fit.objects.filter(team=team, family="outage").exists(),
            timeout=45,
            what="a fit of the family posted during the outage",
            log=worker.log,
        )
    finally:
        worker.stop()


def test_after_a_failed_publish_the_process_does_not_try_the_broker_again_at_once(compose_redis, settings, monkeypatch):
    settings.BROKER_RETRY_SECONDS = 60.0
    monkeypatch.setattr(dispatch, "_broker_down_until", 0.0)
    compose_redis.stop()
    attempts = []
    task = dispatch.current_app.tasks[dispatch.SWEEP_FITS]
    original = task.apply_async

    def counted(*args, **kwargs):
        attempts.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(task, "apply_async", counted)
    assert [dispatch.send(dispatch.SWEEP_FITS) for _ in range(5)] == [False] * 5
    assert len(attempts) == 1  # the other four were answered from the failure just seen
