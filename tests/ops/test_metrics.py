"""/metrics: token-guarded; request counts per view; fits, refit lag, chunk durations and queue depth."""

import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from fits.models import Fit, FitScope
from ops.celery import CHUNK_DURATION, CHUNK_TASK, _task_finished, _task_started
from ops.models import HistogramBucket, WorkerHeartbeat
from ops.services import histogram_observe
from tests.factories import TeamFactory
from workers.tasks import run_fit_chunk

pytestmark = pytest.mark.django_db
TOKEN = "s3cret-metrics-token"


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = ""


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_answer_404_while_no_token_is_set(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(metrics_on, header):
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 403
    assert b"bitscale_" not in response.content


def test_metrics_answer_any_host_as_the_probe_does(metrics_on, settings):
    settings.ALLOWED_HOSTS = ["bitscale.example.com"]
    assert Client().get("/metrics", HTTP_HOST="web:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert Client().get("/api/v1/runs/", HTTP_HOST="web:8000").status_code == 400  # everything else is checked


def test_requests_are_counted_and_timed_per_view(metrics_on, client_rw):
    key = ("bitscale_http_requests_total", (("method", "GET"), ("status", "200"), ("view", "run-list")))
    timed = ("bitscale_http_request_duration_seconds_count", (("view", "run-list"),))
    before = scrape()
    for _ in range(3):
        assert client_rw.get("/api/v1/runs/").status_code == 200
    assert client_rw.get("/no/such/page").status_code == 404
    after = scrape()
    assert after[key] - before.get(key, 0) == 3
    assert after[timed] - before.get(timed, 0) == 3
    unmatched = ("bitscale_http_requests_total", (("method", "GET"), ("status", "404"), ("view", "unmatched")))
    assert after[unmatched] - before.get(unmatched, 0) == 1


def test_fit_counts_and_refit_lag_come_from_the_database(metrics_on):
    team = TeamFactory.create()
    for version, status in enumerate(["succeeded", "failed", "failed", "running"], start=1):
        law = "precision" if status == "running" else "chinchilla"
        Fit.objects.create(team=team, family="f", law=law, version=version, status=status)
    FitScope.objects.create(team=team, family="f", law="chinchilla", dirty_since=timezone.now() - timedelta(hours=1))
    FitScope.objects.create(team=team, family="g", law="chinchilla", dirty_since=timezone.now())
    FitScope.objects.create(team=team, family="h", law="chinchilla")

    samples = scrape()
    assert samples[("bitscale_database_up", ())] == 1
    counts = {status: samples[("bitscale_fits", (("status", status),))] for status in Fit.Status.values}
    assert counts == {"queued": 0, "running": 1, "succeeded": 1, "failed": 2}
    assert samples[("bitscale_dirty_scopes", ())] == 2
    assert 3600 <= samples[("bitscale_refit_lag_seconds", ())] < 3700


def test_refit_lag_is_zero_when_every_scope_is_fitted(metrics_on):
    FitScope.objects.create(team=TeamFactory.create(), family="f", law="fp")
    samples = scrape()
    assert samples[("bitscale_refit_lag_seconds", ())] == 0
    assert samples[("bitscale_dirty_scopes", ())] == 0


def test_chunk_durations_form_a_cumulative_histogram(metrics_on):
    for seconds in (0.1, 3.0, 3.0, 700.0):
        histogram_observe(name=CHUNK_DURATION, bounds=(1.0, 5.0, 60.0), seconds=seconds)
    samples = scrape()

    def bucket(le: str) -> float:
        return samples[(f"{CHUNK_DURATION}_bucket", (("le", le),))]

    assert (bucket("1.0"), bucket("5.0"), bucket("60.0"), bucket("+Inf")) == (1, 3, 3, 4)
    assert samples[(f"{CHUNK_DURATION}_count", ())] == 4
    assert samples[(f"{CHUNK_DURATION}_sum", ())] == pytest.approx(706.1)


def test_a_chunk_task_run_by_celery_records_its_duration():
    # Eager mode runs the task through Celery's tracer, which sends the same signals as a worker does.
    run_fit_chunk.apply_async(kwargs={"fit_id": 999_999, "index": 0})  # no such fit: succeeds at once
    infinity = HistogramBucket.objects.get(name=CHUNK_DURATION, le__isnull=True)
    assert infinity.count == 1
    assert 0 <= infinity.sum_seconds < 5


def test_only_successful_chunk_tasks_are_observed():
    other = SimpleNamespace(name="workers.run_fit")
    _task_started(task_id="a", task=other)
    _task_finished(task_id="a", state="SUCCESS")
    _task_started(task_id="b", task=SimpleNamespace(name=CHUNK_TASK))
    _task_finished(task_id="b", state="FAILURE")
    assert not HistogramBucket.objects.filter(name=CHUNK_DURATION).exists()


def test_workers_seen_counts_recent_heartbeats_only(metrics_on, settings):
    settings.WORKER_HEARTBEAT_SECONDS = 10
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@a", started_at=now, seen_at=now - timedelta(seconds=5))
    WorkerHeartbeat.objects.create(hostname="celery@b", started_at=now, seen_at=now - timedelta(seconds=60))
    assert scrape()[("bitscale_workers_seen", ())] == 1


@pytest.mark.integration
def test_broker_queue_lengths_are_read_from_redis(metrics_on, settings, redis_server):
    import redis

    url = redis_server.url(8)  # the tests' own redis-server (tests/redis_server.py)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.rpush("fits", "m1", "m2")
    client.rpush("fits\x06\x163", "m3")  # a message of priority 3 waits in a list of its own
    client.rpush("celery", "m4")
    settings.CELERY_BROKER_URL = url
    samples = scrape()
    assert samples[("bitscale_broker_up", ())] == 1
    assert samples[("bitscale_broker_queue_length", (("queue", "fits"),))] == 3
    assert samples[("bitscale_broker_queue_length", (("queue", "celery"),))] == 1


def test_an_unreachable_broker_is_a_reading_not_an_error(metrics_on, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    samples = scrape()
    assert samples[("bitscale_broker_up", ())] == 0
    assert not any(name == "bitscale_broker_queue_length" for name, _ in samples)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_observers_lose_no_observation_and_never_deadlock():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL")
        pytest.skip("needs PostgreSQL: row locks are what this checks")

    def observe(worker: int) -> None:
        try:
            for n in range(10):
                histogram_observe(name="concurrent", bounds=(1.0, 2.0, 3.0), seconds=(worker + n) % 4 + 0.5)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(observe, range(4)))  # first use included: all four race to create the buckets
    counts = dict(HistogramBucket.objects.filter(name="concurrent").values_list("le", "count"))
    assert counts == {1.0: 10, 2.0: 20, 3.0: 30, None: 40}
    assert HistogramBucket.objects.get(name="concurrent", le=None).sum_seconds == pytest.approx(80.0)
