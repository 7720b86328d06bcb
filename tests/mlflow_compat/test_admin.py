"""Admin pages of MLflow-logged runs: the loss curve on the run's page and the mapping errors, team-scoped."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mlflow_compat.models import MlflowRun
from runs.models import Run
from tests.factories import logged_in, staff_user
from tests.mlflow_compat.helpers import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(api):
    experiment_id = post(api, "experiments/create", {"name": "curves"}).json()["experiment_id"]
    run_id = post(api, "runs/create", {"experiment_id": experiment_id}).json()["run"]["info"]["run_id"]
    params = [{"key": "n_params", "value": "1e6"}, {"key": "n_tokens", "value": "2e7"}]
    metrics = [{"key": "train_loss", "value": 6 - i / 100, "timestamp": i, "step": i} for i in range(300)]
    metrics.append({"key": "train_loss", "value": "NaN", "timestamp": 999, "step": 300})
    post(api, "runs/log-batch", {"run_id": run_id, "params": params, "metrics": metrics})
    bad = post(api, "runs/create", {"experiment_id": experiment_id}).json()["run"]["info"]["run_id"]
    post(api, "runs/log-batch", {"run_id": bad, "params": [{"key": "n_params", "value": "lots"}]})
    post(api, "runs/update", {"run_id": bad, "status": "FINISHED", "end_time": 5})
    return run_id, bad


def test_the_run_page_plots_its_loss_curve(logged, mlflow_team, django_user_model):
    member = logged_in(staff_user("ada", team=mlflow_team))
    run = Run.objects.get()

    page = member.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()

    assert "<svg" in page
    assert "train_loss" in page
    assert "1 NaN/Infinity value(s) not drawn" in page


def test_a_run_without_history_says_so(mlflow_team, django_user_model):
    run = Run.objects.create(team=mlflow_team, n_params=1, n_tokens=1, final_loss=3.0)
    member = logged_in(staff_user("ada", team=mlflow_team))

    page = member.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()

    assert "no loss metric history logged" in page


def test_mlflow_runs_list_shows_mapping_errors_to_their_team_only(logged, mlflow_team, django_user_model):
    from runs.models import Team

    _, bad = logged
    member = logged_in(staff_user("ada", team=mlflow_team))
    outsider = logged_in(staff_user("bob", team=Team.objects.create(slug="other")))
    url = reverse("admin:mlflow_compat_mlflowrun_changelist")

    page = member.get(url).content.decode()
    other_page = outsider.get(url).content.decode()

    assert MlflowRun.objects.get(run_id=bad).mapping_error
    assert "cannot read &#x27;lots&#x27;" in page or "cannot read 'lots'" in page
    assert bad not in other_page
    assert (
        member.get(
            reverse("admin:mlflow_compat_mlflowrun_change", args=[MlflowRun.objects.get(run_id=bad).pk])
        ).status_code
        == 200
    )
