"""The real MLflow client (mlflow-skinny) logging to Bitscale on pytest-django's live server, unchanged but for
MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN."""

from __future__ import annotations

import json
import math

import mlflow
import pytest
import requests
from django.db import connection
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlflow_compat.models import MlflowRun
from runs.models import FamilyChange, MetricPoint, Run, Team
from runs.services import api_key_create

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 120


def train(*, experiment: str = "GPT Sweep/v2", final_loss: float | None = 3.1, end: bool = True) -> str:
    """A training script as teams write it: params, a loss curve, a final loss and PTQ losses, a tag."""
    mlflow.set_experiment(experiment)
    run = mlflow.start_run(run_name="n110m-w8")
    mlflow.log_params({"n_params": "1.1e8", "n_tokens": 2.2e9, "weight_bits": 8, "lr": 3e-4, "dataset": "c4"})
    for step in range(STEPS):
        mlflow.log_metrics({"train_loss": 6.0 - step * 0.02, "lr": 3e-4}, step=step)
    if final_loss is not None:
        mlflow.log_metric("final_loss", 3.4, step=STEPS - 2)
        mlflow.log_metric("final_loss", final_loss, step=STEPS - 1)  # the highest step wins
    mlflow.log_metric("ptq_loss/4", 3.3)
    mlflow.log_metric("ptq_loss/gptq/3", 3.6)
    mlflow.set_tag("owner", "ada")
    if end:
        mlflow.end_run()
    return run.info.run_id


def test_an_unchanged_script_logs_a_bitscale_run(tracking):
    run_id = train()

    run = Run.objects.get(external_id=f"mlflow-{run_id}")
    assert run.family == "gpt-sweep-v2"
    assert (run.n_params, run.n_tokens, run.weight_bits) == (110_000_000, 2_200_000_000, 8.0)
    assert run.final_loss == 3.1
    assert run.status == "finished"
    assert run.dataset == "c4"
    assert run.name == "n110m-w8"
    assert run.metadata["mlflow_params"] == {"lr": "0.0003"}
    assert run.metadata["mlflow_tags"] == {"owner": "ada"}
    assert sorted(run.evaluations.values_list("post_train_bits", "method", "loss")) == [
        (3.0, "gptq", 3.6),
        (4.0, "rtn", 3.3),
    ]
    assert FamilyChange.objects.filter(team=run.team, family="gpt-sweep-v2").exists()  # a refit is on its way
    assert MetricPoint.objects.filter(run=run, key="train_loss").count() == STEPS
    assert MlflowRun.objects.get(run_id=run_id).mapping_error == ""


def test_get_run_search_runs_and_metric_history_round_trip(tracking):
    run_id = train()
    client = MlflowClient()

    got = client.get_run(run_id)
    [listed] = mlflow.search_runs(experiment_names=["GPT Sweep/v2"], output_format="list")
    history = client.get_metric_history(run_id, "train_loss")

    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time
    assert got.data.params["n_params"] == "1.1e8"
    assert got.data.metrics["final_loss"] == 3.1
    assert got.data.metrics["train_loss"] == pytest.approx(6.0 - (STEPS - 1) * 0.02)
    assert got.data.tags["owner"] == "ada"
    assert got.data.tags["bitscale.run_id"] == str(Run.objects.get().pk)
    assert "bitscale.error" not in got.data.tags
    assert listed.info.run_id == run_id
    assert [m.step for m in history] == list(range(STEPS))
    assert history[0].value == pytest.approx(6.0)
    by_param = mlflow.search_runs(
        experiment_names=["GPT Sweep/v2"], filter_string="params.lr = '0.0003'", output_format="list"
    )
    by_metric = mlflow.search_runs(
        experiment_names=["GPT Sweep/v2"], filter_string="metrics.final_loss > 5", output_format="list"
    )
    assert [r.info.run_id for r in by_param] == [run_id]
    assert by_metric == []


def test_async_logging_lands_every_point(tracking, monkeypatch):
    if connection.vendor == "sqlite":
        # The live server shares one in-memory SQLite connection between its threads: one batch at a time.
        # On PostgreSQL (CI) the client's default pool of 10 threads logs concurrently.
        monkeypatch.setenv("MLFLOW_ASYNC_LOGGING_THREADPOOL_SIZE", "1")
    mlflow.set_experiment("async")
    with mlflow.start_run() as run:
        mlflow.log_params({"n_params": 1e6, "n_tokens": 2e7})
        operations = [mlflow.log_metric("loss", 5.0 - step / 100, step=step, synchronous=False) for step in range(30)]
        for operation in operations:
            operation.wait()
        monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
        for step in range(30, 60):
            mlflow.log_metrics({"loss": 5.0 - step / 100}, step=step)
        mlflow.log_metric("final_loss", 4.4, step=60)
    # end_run waits for the queued batches.

    run_row = Run.objects.get(external_id=f"mlflow-{run.info.run_id}")
    assert sorted(MetricPoint.objects.filter(run=run_row, key="loss").values_list("step", flat=True)) == list(range(60))
    assert run_row.status == "finished"
    assert run_row.final_loss == 4.4


def test_points_logged_before_the_sizes_join_the_history(tracking):
    mlflow.set_experiment("late-params")
    with mlflow.start_run() as run:
        for step in range(5):
            mlflow.log_metric("loss", 5.0 - step, step=step)
        assert not Run.objects.exists()  # no n_params and n_tokens yet: not a Bitscale run
        mlflow.log_params({"n_params": 1e6, "n_tokens": 2e7})
        mlflow.log_metric("loss", 0.5, step=5)

    run_row = Run.objects.get()
    assert list(MetricPoint.objects.filter(run=run_row).values_list("step", flat=True).order_by("step")) == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "loss")] == [0, 1, 2, 3, 4, 5]


def test_a_finished_run_without_final_loss_stays_running_with_the_reason_in_its_tags(tracking):
    run_id = train(final_loss=None)

    assert Run.objects.get().status == "running"
    assert "without a final_loss" in MlflowClient().get_run(run_id).data.tags["bitscale.error"]


def test_a_nan_final_loss_is_diverged_and_kept_as_nan(tracking):
    run_id = train(final_loss=math.nan)

    run = Run.objects.get()
    assert run.status == "diverged"
    assert run.final_loss is None
    assert math.isnan(MlflowClient().get_run(run_id).data.metrics["final_loss"])


def test_a_changed_param_is_refused_with_invalid_parameter_value(tracking):
    mlflow.set_experiment("params")
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(MlflowException) as caught:
            mlflow.log_param("lr", 0.2)

    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert MlflowClient().get_run(run.info.run_id).data.params["lr"] == "0.1"


def test_a_read_only_key_reads_but_cannot_log(tracking, mlflow_team, monkeypatch):
    train(experiment="shared")
    read_only = api_key_create(team=mlflow_team, read_only=True)[1]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", read_only)
    client = MlflowClient()

    experiment = client.get_experiment_by_name("shared")
    with pytest.raises(MlflowException) as caught:
        client.create_run(experiment.experiment_id)

    assert caught.value.error_code == "PERMISSION_DENIED"
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_another_teams_run_does_not_exist(tracking, monkeypatch):
    run_id = train(experiment="private")
    other = Team.objects.create(slug="other")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", api_key_create(team=other)[1])
    client = MlflowClient()

    with pytest.raises(MlflowException) as on_get:
        client.get_run(run_id)
    with pytest.raises(MlflowException) as on_log:
        client.log_metric(run_id, "loss", 1.0)

    assert on_get.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert on_log.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name("private") is None


def test_an_unknown_experiment_name_is_none(tracking):
    assert MlflowClient().get_experiment_by_name("never-created") is None
    assert MlflowClient().get_experiment_by_name("Default").experiment_id == "0"


def test_the_default_experiment_is_family_default(tracking):
    with mlflow.start_run():
        mlflow.log_params({"n_params": 1e6, "n_tokens": 2e7})

    assert Run.objects.get().family == "default"


def test_a_family_tag_and_a_team_mapping_on_the_experiment(tracking):
    mapping = {
        "fields": {
            "n_params": "params.model_params",
            "n_tokens": {"source": "params.tokens_billions", "scale": 1e9},
            "weight_bits": "params.train_bits",
            "final_loss": "metrics.val_loss",
        },
        "constants": {"eval_set": "c4-val"},
        "evaluations": [{"pattern": "metrics.ptq_loss_(?P<bits>[0-9.]+)bit", "method": "rtn"}],
    }
    client = MlflowClient()
    experiment_id = client.create_experiment(
        "team names", tags={"bitscale.mapping": json.dumps(mapping), "bitscale.family": "chinchilla-int"}
    )
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_params({"model_params": 2_000_000, "tokens_billions": 0.04, "train_bits": 4})
        mlflow.log_metrics({"val_loss": 3.9, "ptq_loss_3bit": 4.2})

    run = Run.objects.get()
    assert (run.family, run.n_params, run.n_tokens, run.weight_bits) == ("chinchilla-int", 2_000_000, 40_000_000, 4.0)
    assert (run.final_loss, run.status, run.eval_set) == (3.9, "finished", "c4-val")
    assert list(run.evaluations.values_list("post_train_bits", "method", "loss")) == [(3.0, "rtn", 4.2)]


def test_a_malformed_team_mapping_is_refused_when_set(tracking):
    client = MlflowClient()
    experiment_id = client.create_experiment("bad mapping")

    with pytest.raises(MlflowException) as caught:
        client.set_experiment_tag(experiment_id, "bitscale.mapping", json.dumps({"fields": {"n_parms": "x"}}))

    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "n_parms" in caught.value.message


def test_a_mapping_problem_never_fails_the_call(tracking):
    mlflow.set_experiment("odd")
    with mlflow.start_run() as run:
        mlflow.log_params({"n_params": "about a billion", "n_tokens": 2e7, "seq_len": "-3"})
        mlflow.log_metric("final_loss", 3.0)

    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert "n_params" in tags["bitscale.error"]
    assert not Run.objects.exists()


def test_deleting_a_run_excludes_its_bitscale_run(tracking):
    run_id = train(experiment="to-delete")

    MlflowClient().delete_run(run_id)

    run = Run.objects.get()
    assert run.excluded
    assert "MLflow" in run.exclusion_reason
    assert mlflow.search_runs(experiment_names=["to-delete"], output_format="list") == []


def test_logging_an_artifact_fails_with_a_clear_message(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written here instead
    mlflow.set_experiment("artifacts")
    with mlflow.start_run(), pytest.raises((MlflowException, requests.HTTPError)) as caught:
        mlflow.log_text("hello", "notes.txt")

    assert "Bitscale stores no artifacts" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_search_finds_runs_by_bitscale_tags(tracking):
    """A team finds its mis-mapped runs, and the MLflow run of a Bitscale run, by the tags Bitscale shows."""
    mapped = train(experiment="tagged")
    with mlflow.start_run(run_name="no-size"):
        mlflow.log_param("num_params", "1e8")  # a team's own name, not mapped: the run carries bitscale.error
        mlflow.log_metric("final_loss", 3.0)
    unmapped = mlflow.last_active_run().info.run_id
    bitscale_id = Run.objects.get(external_id=f"mlflow-{mapped}").pk

    def search(text: str) -> list[str]:
        return [
            r.info.run_id
            for r in mlflow.search_runs(experiment_names=["tagged"], filter_string=text, output_format="list")
        ]

    assert search("tags.`bitscale.error` != ''") == [unmapped]
    assert search(f"tags.`bitscale.run_id` = '{bitscale_id}'") == [mapped]
    assert search("tags.`bitscale.error` LIKE '%n_params%'") == [unmapped]
    assert search("tags.`bitscale.run_id` != '' and tags.owner = 'ada'") == [mapped]


def test_the_parent_of_a_nested_sweep_is_not_an_error(tracking):
    mlflow.set_experiment("nested")
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_param("lr", "3e-4")
        for size in ("1e8", "2e8"):
            with mlflow.start_run(run_name=f"n{size}", nested=True):
                mlflow.log_params({"n_params": size, "n_tokens": "2e9"})
                mlflow.log_metric("final_loss", 3.0)
    parent_run = MlflowClient().get_run(parent.info.run_id)
    assert "bitscale.error" not in parent_run.data.tags
    assert MlflowRun.objects.get(run_id=parent.info.run_id).mapping_error == ""
    assert Run.objects.filter(family="nested").count() == 2
    with mlflow.start_run(run_name="alone"):  # no nested runs: a run without a size is still reported
        mlflow.log_param("lr", "3e-4")
    alone = mlflow.last_active_run().info.run_id
    assert "no n_params or n_tokens" in MlflowClient().get_run(alone).data.tags["bitscale.error"]
