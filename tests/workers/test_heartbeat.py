"""A real worker process records its heartbeat (seen by /healthz and /metrics) and its chunk durations."""

import os

import pytest
from django.test import Client

from ops.celery import CHUNK_DURATION
from ops.models import HistogramBucket, WorkerHeartbeat
from tests.workers.celery_helpers import Worker, configure_celery, wait_for
from workers.tasks import run_fit_chunk

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_url(settings, redis_url):
    test_url = redis_url  # a database of the tests' own redis-server, emptied of stray messages
    saved = {key: getattr(settings, key) for key in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL")}
    saved_env = os.environ.get("CELERY_BROKER_URL", "")
    configure_celery(settings, CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=test_url)
    yield test_url
    configure_celery(settings, **saved)
    os.environ["CELERY_BROKER_URL"] = saved_env


def test_a_running_worker_is_seen_by_healthz_and_keeps_beating(broker_url, settings):
    settings.WORKER_HEARTBEAT_SECONDS = 1
    assert Client().get("/healthz").json()["workers"]["recent"] == 0
    worker = Worker(broker_url, WORKER_HEARTBEAT_SECONDS=1)
    try:
        wait_for(lambda: WorkerHeartbeat.objects.exists(), timeout=30, what="a heartbeat", log=worker.log)
        first = WorkerHeartbeat.objects.get()
        assert first.hostname.startswith("celery@")
        assert set(first.queues.split(",")) == {"celery", "fits"}
        wait_for(
            lambda: WorkerHeartbeat.objects.get().seen_at > first.seen_at,
            timeout=30,
            what="a second heartbeat",
            log=worker.log,
        )
        health = Client().get("/healthz")
        assert health.status_code == 200
        assert health.json()["workers"]["recent"] == 1

        # A chunk task (of a fit that no longer exists: it succeeds at once) is timed in the worker process.
        run_fit_chunk.apply_async(kwargs={"fit_id": 999_999, "index": 0})
        wait_for(
            lambda: HistogramBucket.objects.filter(name=CHUNK_DURATION, le__isnull=True, count=1).exists(),
            timeout=30,
            what="the chunk duration",
            log=worker.log,
        )
    finally:
        worker.stop()
