"""/healthz reports the workers seen (heartbeats) and stays 200 when there are none."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ops.models import WorkerHeartbeat
from ops.services import worker_heartbeat_record

pytestmark = pytest.mark.django_db


def test_no_worker_seen_is_reported_without_failing(settings):
    settings.WORKER_HEARTBEAT_SECONDS = 30
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json()["workers"] == {"recent": 0, "window_seconds": 90, "last_seen": None}


def test_recent_workers_are_counted_and_the_newest_heartbeat_shown(settings):
    settings.WORKER_HEARTBEAT_SECONDS = 10
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@gone", started_at=now, seen_at=now - timedelta(minutes=5))
    worker_heartbeat_record(hostname="celery@a", queues=["fits", "celery"], started_at=now)
    workers = Client().get("/healthz").json()["workers"]
    assert workers["recent"] == 1
    assert workers["window_seconds"] == 30
    assert workers["last_seen"].endswith("Z")
    assert WorkerHeartbeat.objects.get(hostname="celery@a").queues == "celery,fits"


def test_heartbeats_of_workers_gone_for_a_day_are_forgotten():
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@old", started_at=now, seen_at=now - timedelta(days=2))
    worker_heartbeat_record(hostname="celery@new", queues=["celery"], started_at=now)
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@new"]


def test_healthz_answers_any_host_over_plain_http(settings):
    settings.ALLOWED_HOSTS = ["bitscale.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert Client().get("/admin/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
