"""Concurrent writers on real PostgreSQL: idempotent re-posting holds under 8 clients at once."""

import os
import threading

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from runs.models import Evaluation, Run
from runs.services import api_key_create
from tests.factories import TeamFactory, payload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLIENTS = 8


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the suite on PostgreSQL (DATABASE_URL=postgres://...)")
        pytest.skip("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")


def _in_parallel(work):
    """Run work(i) in CLIENTS threads released together; return their results in order."""
    barrier = threading.Barrier(CLIENTS)
    results = [None] * CLIENTS
    errors = []

    def target(i):
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:  # surfaced below: a thread's exception must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def _client(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_eight_clients_posting_the_same_external_id_make_exactly_one_run():
    team = TeamFactory(slug="race")
    _, secret = api_key_create(team=team)

    def post(i):
        body = payload(
            external_id="same-run",
            final_loss=3.0 + i / 100,
            evaluations=[{"post_train_bits": 4, "loss": 3.5 + i / 100}],
        )
        response = _client(secret).post("/api/v1/runs/", body, format="json")
        return response.status_code, response.json()["id"]

    results = _in_parallel(post)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (CLIENTS - 1) + [201]
    assert len({run_id for _, run_id in results}) == 1
    assert Run.objects.filter(team=team).count() == 1
    assert Evaluation.objects.filter(run__team=team).count() == 1


def test_eight_concurrent_bulks_sharing_external_ids_make_each_run_once():
    team = TeamFactory(slug="race-bulk")
    _, secret = api_key_create(team=team)

    def post(i):
        runs = [payload(external_id=f"r{j}", final_loss=3.0 + i / 100) for j in range(50)]
        response = _client(secret).post("/api/v1/runs/bulk/", {"runs": runs}, format="json")
        return response.status_code

    assert _in_parallel(post) == [200] * CLIENTS
    assert Run.objects.filter(team=team).count() == 50
