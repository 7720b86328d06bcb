"""Faults with the real services: Redis stopped during ingest, PostgreSQL restarted under load.

Redis is the tests' own redis-server (tests/redis_server.py). The PostgreSQL test restarts the machine's own
cluster, so it runs in CI (where the services are the CI's) and locally only with BITSCALE_FAULT_TESTS=1.
"""

import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from fits.models import Fit
from runs.models import FamilyChange, Run, Team
from runs.services import api_key_create
from tests.factories import payload, payloads_from_observations
from tests.workers.celery_helpers import wait_for
from workers.tasks import sweep_fits

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def machine_postgresql_restarts():
    if not (os.environ.get("CI") or os.environ.get("BITSCALE_FAULT_TESTS")):
        pytest.skip("restarts the machine's PostgreSQL: set BITSCALE_FAULT_TESTS=1 to run it here")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def _api_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _api(team: Team) -> APIClient:
    _, secret = api_key_create(team=team)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_redis_stopped_during_ingest_loses_nothing(start_worker, settings, redis_server):
    from fits.laws import load_chinchilla_epoch

    team = Team.objects.create(slug="redis-down")
    client = _api(team)
    bodies = payloads_from_observations(load_chinchilla_epoch(), family="epoch")

    redis_server.stop()  # the tests' own redis-server, the broker of this test (tests/workers/conftest.py)
    try:
        # when: runs arrive while the broker is down
        statuses = [client.post("/api/v1/runs/", body, format="json").status_code for body in bodies[:60]]
        statuses.append(client.post("/api/v1/runs/bulk/", {"runs": bodies[60:]}, format="json").status_code)
        health = client.get("/healthz").json()
    finally:
        redis_server.start()

    # then: every post landed and the family remembers that it needs a fit
    assert set(statuses) <= {200, 201}
    assert (health["database"], health["broker"]) == ("ok", "unavailable")
    assert Run.objects.filter(team=team).count() == 240
    assert FamilyChange.objects.get(team=team, family="epoch").pending_since is not None

    # and: once Redis is back, the sweep gets the fits done
    settings.FIT_MAX_WAIT_SECONDS, settings.FIT_SWEEP_GRACE_SECONDS = 0, 1
    worker = start_worker(FIT_BOOTSTRAP_DRAWS=20, FIT_MAX_WAIT_SECONDS=0, FIT_SWEEP_GRACE_SECONDS=1)
    time.sleep(1.5)
    sweep_fits.apply_async()
    wait_for(
        lambda: Fit.objects.filter(team=team, status="succeeded").count() == 2,
        timeout=120,
        what="the fits",
        log=worker.log,
    )


@pytest.mark.serial  # every other test's database goes down with it
def test_postgresql_restarted_under_load_answers_503_and_recovers(
    live_server, monkeypatch, machine_postgresql_restarts
):
    monkeypatch.setattr("config.dispatch.send", lambda task_name, **kwargs: None)  # this test is about the database
    cluster = next(iter(sorted(Path("/etc/postgresql").iterdir())), None) if Path("/etc/postgresql").exists() else None
    if cluster is None or shutil.which("pg_ctlcluster") is None or connection.vendor != "postgresql":
        pytest.fail("needs the machine's PostgreSQL cluster and pg_ctlcluster")
    team = Team.objects.create(slug="pg-restart")
    _, secret = api_key_create(team=team)
    results: list[tuple[int, str | None, str]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        import httpx

        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                external_id = f"w{worker}-{i}"
                try:
                    response = http.post("/api/v1/runs/", json=payload(external_id=external_id))
                    results.append((response.status_code, response.headers.get("Retry-After"), external_id))
                except httpx.TransportError as exc:
                    results.append((0, None, f"{external_id}: {exc!r}"))
                time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.name, "main", "restart"], check=True, capture_output=True
    )
    wait_for(lambda: _port_open(5432), timeout=60, what="PostgreSQL to come back")
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    codes = [code for code, _, _ in results]
    failures = [(code, detail) for code, _, detail in results if code not in {201, 503}]
    assert not failures, failures[:5]  # never a 500 or a traceback: 201, or 503 while the database was away
    assert all(retry == "5" for code, retry, _ in results if code == 503)
    runs_of_codes = [(code, len(list(group))) for code, group in itertools.groupby(codes)]
    assert codes[-1] == 201, runs_of_codes  # and it recovered
    assert 201 in codes[: len(codes) // 4]
    connection.close()  # the test's own connection died with the restart; the next query reconnects

    # A 503 means "retry": the connection may have died after the commit, so some of those runs exist.
    # Retrying them (as the client does) is safe because posts are idempotent by external_id.
    retry = _api_client(secret)
    for code, _, external_id in results:
        if code == 503:
            assert retry.post("/api/v1/runs/", payload(external_id=external_id), format="json").status_code in {
                200,
                201,
            }
    stored = list(Run.objects.filter(team=team).values_list("external_id", flat=True))
    assert sorted(stored) == sorted(external_id for _, _, external_id in results)  # each once: none lost or doubled
