"""Redis, as compose uses it (broker in db 0, cache in db 1), stopped and started again under a stream of posts: no
5xx, every accepted post stored, and each refit whose message could not be sent is left for the sweep's very
next run (its scope's `enqueued_at` cleared), so refits resume within a sweep interval of Redis's return.

A private redis-server (tests/redis_server.py); this process publishes to it for real (eager mode off).
"""

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connection
from rest_framework.test import APIClient

from config.env import cache_config
from fits import dispatch
from fits.models import FitScope
from fits.pipeline import fits_sweep
from runs.models import Run, Team
from runs.services import api_key_create
from tests.factories import payload
from tests.workers.celery_helpers import configure_celery, wait_for
from workers.tasks import sweep_fits

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


def test_posts_through_a_redis_outage_are_all_stored_and_their_refits_wait_for_the_next_sweep(
    compose_redis, team, caplog
):
    client = _client(team)
    statuses: dict[str, int] = {}
    posted = threading.Semaphore(0)
    between_posts = threading.Lock()  # Redis stops and starts between two posts, never during one
    phase = {"name": "before"}

    def post_all() -> None:
        try:
            for i in range(POSTS):
                with between_posts:
                    # A new family per phase: its refit request is published (or not) during that phase.
                    external_id = f"{phase['name']}-{i}"
                    body = payload(external_id=external_id, family=f"fam-{phase['name']}")
                    statuses[external_id] = client.post("/api/v1/runs/", body, format="json").status_code
                posted.release()
        finally:
            connection.close()

    with caplog.at_level(logging.WARNING, logger="fits.dispatch"):
        poster = threading.Thread(target=post_all)
        poster.start()
        for _ in range(10):
            assert posted.acquire(timeout=60)
        with between_posts:  # mid-stream: posts keep arriving
            compose_redis.stop()
            phase["name"] = "down"
        for _ in range(20):
            assert posted.acquire(timeout=60)
        with between_posts:
            health = client.get("/healthz")
            compose_redis.start()
            phase["name"] = "after"
        poster.join(timeout=120)
    assert not poster.is_alive()

    assert set(statuses.values()) == {201}, statuses  # no 5xx, nothing refused
    assert set(Run.objects.filter(team=team).values_list("external_id", flat=True)) == set(statuses)
    assert (health.status_code, health.json()["broker"]) == (200, "unavailable")
    assert "could not publish workers.refit_scope" in caplog.text  # the outage did fall within the posts

    # Refits that could not be sent are the sweep's at once, not after the time a lost message takes to count.
    down = FitScope.objects.filter(team=team, family="fam-down")
    assert down.count() == 3
    assert list(down.values_list("enqueued_at", flat=True)) == [None] * 3
    assert set(down.values_list("id", flat=True)) <= set(fits_sweep().scope_ids)

    # With Redis back, the sweep's messages reach it.
    queued = redis.Redis.from_url(compose_redis.url(0))
    FitScope.objects.filter(team=team).update(enqueued_at=None)
    sweep_fits.apply()
    wait_for(lambda: queued.llen("celery") >= 3, timeout=10, what="the sweep's refit messages in Redis")


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
