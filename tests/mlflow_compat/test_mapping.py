"""The mapping from an MLflow run to a Bitscale payload (pure), and its agreement with the MLflow importer's."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from bitscale_client.importers.mapping import Mapping as ImporterMapping
from bitscale_client.importers.mapping import TrackerRun, tracker_values

from mlflow_compat.mapping import (
    MappingInvalid,
    MlflowRunState,
    map_run,
    parse_team_mapping,
    slugify_family,
    training_date,
)


def state(**overrides) -> MlflowRunState:
    values: dict[str, Any] = {
        "run_id": "abc",
        "run_name": "r",
        "status": "FINISHED",
        "end_time": 1_700_000_000_000,
        "deleted": False,
        "experiment_name": "Sweep",
        "experiment_is_default": False,
        "experiment_tags": {},
        "params": {"n_params": "1.1e8", "n_tokens": "110000000.0"},
        "tags": {},
        "metrics": {"final_loss": 3.0},
    }
    values.update(overrides)
    return MlflowRunState(**values)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("GPT Sweep/v2", "gpt-sweep-v2"),
        ("  ", "default"),
        ("a__b", "a__b"),
        ("Ünïcode!", "n-code"),
        ("x" * 300, "x" * 100),
    ],
)
def test_experiment_names_become_family_slugs(name, slug):
    assert slugify_family(name) == slug


def test_mlflow_strings_are_read_as_numbers():
    payload = map_run(state()).payload

    assert payload["n_params"] == 110_000_000
    assert payload["n_tokens"] == 110_000_000
    assert payload["family"] == "sweep"
    assert payload["status"] == "finished"
    assert payload["external_id"] == "mlflow-abc"


def test_bitscale_prefixed_names_win_and_a_fraction_is_a_problem():
    mapped = map_run(state(params={"n_params": "5", "bitscale.n_params": "7", "n_tokens": "2.5"}))

    assert mapped.payload is None  # n_tokens unreadable: not a Bitscale run yet
    assert any("n_tokens" in problem for problem in mapped.problems)
    assert map_run(state(params={"n_params": "5", "bitscale.n_params": "7", "n_tokens": "9"})).payload["n_params"] == 7


@pytest.mark.parametrize(
    ("status", "final_loss", "expected"),
    [
        ("RUNNING", None, "running"),
        ("SCHEDULED", 3.0, "running"),
        ("FINISHED", 3.0, "finished"),
        ("FINISHED", None, "running"),
        ("FINISHED", math.nan, "diverged"),
        ("RUNNING", math.inf, "diverged"),
        ("FAILED", 3.0, "failed"),
        ("KILLED", None, "failed"),
    ],
)
def test_statuses(status, final_loss, expected):
    metrics = {} if final_loss is None else {"final_loss": final_loss}
    mapped = map_run(state(status=status, metrics=metrics))

    assert mapped.payload["status"] == expected
    if expected == "diverged":
        assert mapped.payload["final_loss"] is None


def test_ptq_metrics_become_evaluations():
    metrics = {"final_loss": 3.0, "ptq_loss/4": 3.2, "ptq_loss/gptq/3": 3.5, "ptq_loss/awq/2.5": math.nan}
    mapped = map_run(state(metrics=metrics))

    assert mapped.payload["evaluations"] == [
        {"post_train_bits": 3.0, "method": "gptq", "loss": 3.5},
        {"post_train_bits": 4.0, "method": "rtn", "loss": 3.2},
    ]
    assert any("ptq_loss/awq/2.5" in problem for problem in mapped.problems)


def test_family_rules():
    assert map_run(state(experiment_is_default=True, experiment_name="Default")).payload["family"] == "default"
    tagged = state(experiment_tags={"bitscale.family": "exp-tag"})
    assert map_run(tagged).payload["family"] == "exp-tag"
    assert (
        map_run(state(experiment_tags={"bitscale.family": "exp-tag"}, tags={"bitscale.family": "run-tag"})).payload[
            "family"
        ]
        == "run-tag"
    )


def test_the_end_time_is_the_training_date():
    assert map_run(state()).trained_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert training_date(None) is None


def test_other_params_and_tags_go_to_metadata():
    mapped = map_run(
        state(params={"n_params": "1", "n_tokens": "2", "lr": "0.1"}, tags={"mlflow.user": "x", "team": "y"})
    )

    assert mapped.payload["metadata"]["mlflow_params"] == {"lr": "0.1"}
    assert mapped.payload["metadata"]["mlflow_tags"] == {"team": "y"}


def test_a_deleted_run_is_excluded():
    payload = map_run(state(deleted=True)).payload

    assert payload["excluded"] is True
    assert payload["exclusion_reason"]


def test_a_malformed_mapping_tag_is_a_problem_not_an_error():
    mapped = map_run(state(experiment_tags={"bitscale.mapping": "{not json"}))

    assert mapped.payload is not None
    assert any("bitscale.mapping" in problem for problem in mapped.problems)
    with pytest.raises(MappingInvalid, match="n_parms"):
        parse_team_mapping({"fields": {"n_parms": "x"}})


MAPPINGS = [
    {
        "fields": {
            "n_params": "params.model_params",
            "n_tokens": {"source": "params.tokens_billions", "scale": 1e9},
            "weight_bits": "train_bits",
            "final_loss": "metrics.val_loss",
            "dataset": "params.data",
        },
        "constants": {"eval_set": "c4-val"},
        "evaluations": [
            {"source": "metrics.ptq_gptq_3", "post_train_bits": 3, "method": "gptq"},
            {"pattern": "metrics.ptq_loss_(?P<bits>[0-9.]+)bit", "method": "rtn"},
        ],
        "family": "from-mapping",
    },
    {"fields": {"n_params": "size", "n_tokens": "tokens", "final_loss": "loss"}},
]


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_the_server_reads_a_team_mapping_as_the_importer_does(mapping):
    params = {
        "model_params": "2000000",
        "tokens_billions": "0.04",
        "train_bits": "4",
        "data": "c4",
        "size": "3e6",
        "tokens": "6e7",
    }
    metrics = {"val_loss": 3.9, "ptq_gptq_3": 4.4, "ptq_loss_2bit": 5.0, "loss": 3.7}
    importer = ImporterMapping.from_json(mapping).to_payload(
        TrackerRun(
            "mlflow",
            "abc",
            "r",
            "FINISHED",
            tracker_values(params, metrics, params_name="params", metrics_name="metrics"),
        )
    )
    server = map_run(
        state(
            params=params,
            metrics=metrics,
            experiment_name="Sweep",
            experiment_tags={"bitscale.mapping": json.dumps(mapping)},
        )
    ).payload

    for name in (
        "external_id",
        "name",
        "n_params",
        "n_tokens",
        "weight_bits",
        "final_loss",
        "dataset",
        "eval_set",
        "status",
    ):
        assert server.get(name) == importer.get(name), name
    assert server["family"] == importer.get("family", "sweep")
    assert sorted(server.get("evaluations", []), key=str) == sorted(importer.get("evaluations", []), key=str)


def test_schedule_params_fill_the_run_schedule():
    params = {
        "n_params": "4e8",
        "n_tokens": "1e10",
        "total_steps": "72000",
        "peak_lr": "0.0003",
        "warmup_steps": "2160.0",
        "lr_schedule": "WSD",
        "decay_start": "57600",
        "final_lr": "3e-5",
        "tokens_per_step": "524288",
    }

    mapped = map_run(state(params=params))

    assert mapped.problems == []
    assert mapped.payload["schedule"] == {
        "total_steps": 72000,
        "peak_lr": 3e-4,
        "warmup_steps": 2160,
        "lr_schedule": "wsd",
        "decay_start": 57600,
        "final_lr": 3e-5,
        "tokens_per_step": 524288.0,
    }
    # The schedule's params are read, so they are not repeated in metadata.
    assert "total_steps" not in mapped.payload["metadata"].get("mlflow_params", {})


def test_a_run_without_schedule_params_has_no_schedule_and_a_bad_one_is_a_note():
    assert "schedule" not in map_run(state()).payload

    bad = map_run(state(params={"n_params": "4e8", "n_tokens": "1e10", "total_steps": "72000", "peak_lr": "-1"}))

    assert "schedule" not in bad.payload
    assert bad.payload["n_params"] == 400_000_000
    assert bad.problems == ["schedule not stored (peak_lr: Must be a positive number.)"]
