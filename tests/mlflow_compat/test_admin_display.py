"""The MLflow run list and page read at a glance: start times as dates (the epoch milliseconds on hover), the
mapping error first on the page, shortened in the list."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mlflow_compat.models import MlflowRun
from tests.factories import logged_in, staff_user
from tests.mlflow_compat.helpers import post

pytestmark = pytest.mark.django_db

START_MS = 1796393071015  # 2026-12-04 14:04:31 UTC


@pytest.fixture
def runs(api):
    experiment_id = post(api, "experiments/create", {"name": "dates"}).json()["experiment_id"]
    good = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": START_MS, "run_name": "110m-int8"})
    bad = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": START_MS})
    bad_id = bad.json()["run"]["info"]["run_id"]
    post(api, "runs/log-batch", {"run_id": bad_id, "params": [{"key": "n_params", "value": "lots " * 40}]})
    post(api, "runs/update", {"run_id": bad_id, "status": "FINISHED", "end_time": START_MS + 60_000})
    return good.json()["run"]["info"]["run_id"], bad_id


def test_the_list_shows_start_times_as_dates_and_short_errors(runs, mlflow_team):
    member = logged_in(staff_user("ada", team=mlflow_team))

    page = member.get(reverse("admin:mlflow_compat_mlflowrun_changelist")).content.decode()

    assert ">2026-12-04 14:04<" in page
    assert f"{START_MS} ms since the epoch" in page  # on hover
    assert f">{START_MS}<" not in page
    assert ">110m-int8<" in page
    error = MlflowRun.objects.get(run_id=runs[1]).mapping_error
    assert len(error) > 80
    assert "…</span>" in page  # the list shortens it; the whole error is on hover and on the page


def test_the_run_page_puts_the_mapping_error_first_and_times_as_dates(runs, mlflow_team):
    member = logged_in(staff_user("ada", team=mlflow_team))
    run = MlflowRun.objects.get(run_id=runs[1])

    page = member.get(reverse("admin:mlflow_compat_mlflowrun_change", args=[run.pk]))
    body = page.content.decode()

    fields = page.context["adminform"].model_admin.get_fields(page.wsgi_request, run)
    assert fields[0] == "mapping_error"
    assert "start_time" not in fields
    assert ">2026-12-04 14:05<" in body  # ended
