"""Tracker importers: the mapping file, W&B exports (JSON and CSV) and a real MLflow file store."""

from __future__ import annotations

import json

import pytest
from bitscale_client.cli import main
from bitscale_client.importers.mapping import Mapping, MappingError, TrackerRun, load_mapping
from bitscale_client.importers.wandb_export import read_wandb_export

MAPPING = {
    "fields": {
        "n_params": "config.model.n_params",
        "n_tokens": {"source": "config.tokens_b", "scale": 1e9},
        "weight_bits": "config.bits",
        "final_loss": "summary.val_loss",
    },
    "constants": {"dataset": "c4"},
    "evaluations": [
        {"source": "summary.gptq_3bit", "post_train_bits": 3, "method": "gptq"},
        {"pattern": "ptq_loss_(?P<bits>[0-9.]+)bit", "method": "rtn"},
    ],
}
WANDB_RUNS = [
    {
        "id": "abc123",
        "name": "small-8bit",
        "state": "finished",
        "project": "sweep",
        "config": {
            "model": {"n_params": 1_000_000},
            "tokens_b": 0.02,
            "bits": {"value": 8, "desc": None},
            "_wandb": {},
        },
        "summary": {"val_loss": 3.5, "ptq_loss_4bit": 3.9, "ptq_loss_6bit": 3.6, "gptq_3bit": 4.2},
    },
    {"id": "def456", "name": "crashed", "state": "crashed", "config": {"model": {"n_params": 2e6}, "tokens_b": 0.04}},
    {"id": "nosize", "name": "no-size", "state": "finished", "config": {}, "summary": {"val_loss": 3.0}},
]


def test_wandb_json_run_maps_fields_scales_and_evaluations(tmp_path):
    export = tmp_path / "runs.json"
    export.write_text(json.dumps(WANDB_RUNS))
    mapping = Mapping.from_json(MAPPING)

    run = next(read_wandb_export(export))
    payload = mapping.to_payload(run, family="sweep")

    assert payload["external_id"] == "wandb-abc123"
    assert (payload["n_params"], payload["n_tokens"], payload["weight_bits"]) == (1_000_000, 20_000_000, 8.0)
    assert (payload["final_loss"], payload["family"], payload["dataset"], payload["status"]) == (
        3.5,
        "sweep",
        "c4",
        "finished",
    )
    assert sorted((e["post_train_bits"], e["method"], e["loss"]) for e in payload["evaluations"]) == [
        (3.0, "gptq", 4.2),
        (4.0, "rtn", 3.9),
        (6.0, "rtn", 3.6),
    ]
    assert payload["metadata"] == {"project": "sweep", "imported_from": "wandb", "wandb_run_id": "abc123"}


def test_tracker_states_become_bitscale_statuses_and_missing_sizes_are_reported(tmp_path):
    export = tmp_path / "runs.json"
    export.write_text(json.dumps(WANDB_RUNS))
    mapping = Mapping.from_json(MAPPING)
    _, crashed, no_size = read_wandb_export(export)

    assert mapping.to_payload(crashed)["status"] == "failed"
    with pytest.raises(MappingError, match=r"missing n_params, n_tokens \(n_params <- config.model.n_params"):
        mapping.to_payload(no_size)


def test_wandb_csv_export_uses_bare_column_names(tmp_path):
    export = tmp_path / "runs.csv"
    export.write_text("Name,State,ID,params,tokens,val_loss,ptq_loss_4bit\nr1,finished,x1,1e6,2e7,3.5,3.8\n")
    mapping = Mapping.from_json(
        {
            "fields": {"n_params": "params", "n_tokens": "tokens", "final_loss": "val_loss"},
            "evaluations": [{"pattern": r"ptq_loss_(\d+)bit"}],
        }
    )

    [run] = read_wandb_export(export)
    payload = mapping.to_payload(run, family="f")

    assert (run.run_id, run.name, run.state) == ("x1", "r1", "finished")
    assert (payload["n_params"], payload["n_tokens"], payload["final_loss"]) == (1_000_000, 20_000_000, 3.5)
    assert payload["evaluations"] == [{"post_train_bits": 4.0, "method": "rtn", "loss": 3.8}]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"fields": {"n_parms": "x"}}, "not a Bitscale run field"),
        ({"fields": {}, "extra": 1}, "unknown key"),
        ({"evaluations": [{"pattern": "no_group"}]}, "needs a group"),
        ({"evaluations": [{"source": "x"}]}, "post_train_bits"),
    ],
)
def test_bad_mapping_files_are_refused_with_a_reason(mapping, message):
    with pytest.raises(MappingError, match=message):
        Mapping.from_json(mapping)


def test_a_value_that_is_not_a_whole_number_is_refused():
    run = TrackerRun("wandb", "1", "r", "finished", {"n": "1.5", "d": 10, "loss": 3.0})
    mapping = Mapping.from_json({"fields": {"n_params": "n", "n_tokens": "d", "final_loss": "loss"}})

    with pytest.raises(MappingError, match="n_params: cannot read '1.5'"):
        mapping.to_payload(run)


def test_import_wandb_dry_run_prints_payloads_and_skips_unmappable_runs(tmp_path, capsys):
    (tmp_path / "runs.json").write_text(json.dumps(WANDB_RUNS))
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))

    code = main(["import-wandb", str(tmp_path / "runs.json"), "--mapping", str(tmp_path / "map.json"),
                 "--family", "sweep", "--dry-run"])  # fmt: skip

    out, err = capsys.readouterr()
    assert code == 0
    assert [p["external_id"] for p in json.loads(out)] == ["wandb-abc123", "wandb-def456"]
    assert "skipped wandb run nosize (no-size): missing n_params" in err


def test_mlflow_importer_reads_a_real_local_file_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from bitscale_client.importers.mlflow_store import read_mlflow_runs

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 only writes file stores when asked to
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("precision-sweep")
    for size, bits, loss in [(1_000_000, 8, 3.5), (4_000_000, 4, 3.1)]:
        with mlflow.start_run(run_name=f"n{size}-w{bits}"):
            mlflow.log_params({"n_params": size, "tokens": size * 20, "weight_bits": bits})
            mlflow.log_metrics({"val_loss": loss, "ptq_loss_3bit": loss + 0.4})
    mapping_file = tmp_path / "map.json"
    mapping_file.write_text(
        json.dumps(
            {
                "family": "mlflow-sweep",
                "fields": {
                    "n_params": "params.n_params",
                    "n_tokens": "params.tokens",
                    "weight_bits": "params.weight_bits",
                    "final_loss": "metrics.val_loss",
                },
                "evaluations": [{"pattern": r"metrics\.ptq_loss_(\d+)bit"}],
            }
        )
    )

    runs = list(read_mlflow_runs(uri, "precision-sweep"))
    payloads = sorted((load_mapping(mapping_file).to_payload(run) for run in runs), key=lambda p: p["n_params"])

    assert [(p["n_params"], p["n_tokens"], p["weight_bits"], p["final_loss"]) for p in payloads] == [
        (1_000_000, 20_000_000, 8.0, 3.5),
        (4_000_000, 80_000_000, 4.0, 3.1),
    ]
    assert payloads[0]["family"] == "mlflow-sweep"
    assert payloads[0]["status"] == "finished"
    assert payloads[0]["name"] == "n1000000-w8"
    assert payloads[0]["external_id"] == f"mlflow-{payloads[0]['metadata']['mlflow_run_id']}"
    assert payloads[1]["evaluations"] == [{"post_train_bits": 3.0, "method": "rtn", "loss": pytest.approx(3.5)}]
    assert payloads[0]["metadata"]["mlflow_experiment"] == "precision-sweep"
