"""Concurrent MLflow logging on real PostgreSQL: batches of one run apply one after the other, none lost."""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection, connections

from mlflow_compat.models import MlflowRun
from mlflow_compat.services import MetricInput, experiment_default, run_create, run_log
from runs.models import MetricPoint, Run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CLIENTS = 8
STEPS_EACH = 50


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the suite on PostgreSQL (DATABASE_URL=postgres://...)")
        pytest.skip("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")


def test_concurrent_batches_of_one_run_all_land(mlflow_team):
    experiment_default(team=mlflow_team)
    run_id = run_create(team=mlflow_team, experiment_id="0", run_name="", start_time=1, tags={}, user_id="").run_id
    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            for step in range(i * STEPS_EACH, (i + 1) * STEPS_EACH, 10):
                metrics = [MetricInput("loss", 5.0 - s / 1000, s, s) for s in range(step, step + 10)]
                params = {"n_params": "1e6", "n_tokens": "2e7", f"worker{i}": str(i)}
                run_log(team=mlflow_team, run_id=run_id, metrics=metrics, params=params)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    mlflow_run = MlflowRun.objects.get(run_id=run_id)
    run = Run.objects.get()
    steps = sorted(MetricPoint.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(CLIENTS * STEPS_EACH))
    assert mlflow_run.history_points == CLIENTS * STEPS_EACH
    assert {f"worker{i}" for i in range(CLIENTS)} <= set(mlflow_run.params)
    assert mlflow_run.metrics["loss"][2] == CLIENTS * STEPS_EACH - 1
