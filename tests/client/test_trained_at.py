"""trained_at in the client: log_run with a datetime, filters, the spool, the CLI and the trackers' end times."""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from bitscale_client import Client, Spooled, cli
from bitscale_client.client import iso_time
from bitscale_client.importers.mapping import Mapping, MappingError, TrackerRun, end_time
from bitscale_client.importers.wandb_export import read_wandb_export
from bitscale_client.spool import Spool

from runs.models import Team
from runs.services import api_key_create
from tests.client.fake_api import RUN, URL, down

FIELDS = {"n_params": "n", "n_tokens": "d", "final_loss": "loss"}


@pytest.fixture
def kolkata(monkeypatch):
    """Local time UTC+05:30 (no daylight saving), so what a naive datetime means is known."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_iso_time_sends_utc_and_reads_naive_datetimes_as_local_time(kolkata):
    assert iso_time(datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-03-01T10:00:00Z"
    assert iso_time(datetime(2025, 3, 1, 5, 30)) == "2025-03-01T00:00:00Z"  # noqa: DTZ001 (naive on purpose)
    assert iso_time(date(2025, 3, 1)) == "2025-03-01"
    assert iso_time("2025-03-01T00:00:00+01:00") == "2025-03-01T00:00:00+01:00"


def test_log_run_and_log_runs_send_datetimes_as_iso_text(api, client):
    client.log_run(**RUN, trained_at=datetime(2025, 3, 1, tzinfo=UTC))
    client.log_runs([{**RUN, "external_id": "b", "trained_at": datetime(2025, 4, 1, 6, tzinfo=UTC)}])
    client.log_run(**RUN, external_id="c", trained_at="2025-05-01T00:00:00Z")

    assert api.posted("/api/v1/runs/")[0]["trained_at"] == "2025-03-01T00:00:00Z"
    assert api.posted("/api/v1/runs/bulk/")[0]["runs"][0]["trained_at"] == "2025-04-01T06:00:00Z"
    assert api.posted("/api/v1/runs/")[1]["trained_at"] == "2025-05-01T00:00:00Z"


def test_a_spooled_run_keeps_its_training_date(api, client, spool_path):
    api.fail_next(*down(6))
    result = client.log_run(**RUN, trained_at=datetime(2025, 3, 1, tzinfo=UTC))
    assert isinstance(result, Spooled)
    [entry] = Spool(spool_path).entries()
    assert entry.payload["trained_at"] == "2025-03-01T00:00:00Z"


def test_list_filters_take_datetimes(api, client):
    api.responses["/api/v1/runs/"] = (200, {"results": [], "next": None})
    list(client.list_runs(trained_after=datetime(2025, 1, 1, tzinfo=UTC), trained_before="2025-02-01"))
    params = dict(api.requests[0].url.params)
    assert (params["trained_after"], params["trained_before"]) == ("2025-01-01T00:00:00Z", "2025-02-01")


def test_cli_export_csv_filters_by_training_date(api, spool_path, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "Client", functools.partial(Client, transport=api.transport(), seed=1))
    monkeypatch.setenv("BITSCALE_URL", URL)
    monkeypatch.setenv("BITSCALE_API_KEY", "bsk_env")
    api.responses["/api/v1/runs/export.csv"] = (200, "ignored")
    out = str(tmp_path / "out.csv")

    code = cli.main(["--spool", str(spool_path), "export-csv", out, "--trained-after", "2025-01-01", "--trained-before",
                     "2025-07-01T00:00:00Z"])  # fmt: skip

    capsys.readouterr()
    assert code == 0
    assert dict(api.requests[0].url.params) == {"trained_after": "2025-01-01", "trained_before": "2025-07-01T00:00:00Z"}


# The trackers ---------------------------------------------------------------------------------------------


def _payload(run: TrackerRun, fields=FIELDS) -> dict:
    return Mapping.from_json({"fields": fields}).to_payload(run, family="f")


def test_wandb_json_runs_are_dated_by_their_last_log_else_created_time_plus_runtime(tmp_path):
    base = {"config": {"n": 1_000_000, "d": 20_000_000}, "state": "finished"}
    runs = [
        {**base, "id": "a", "summary": {"loss": 3.5, "_timestamp": 1_740_787_200.5, "_runtime": 99}},
        {**base, "id": "b", "createdAt": "2025-03-01T00:00:00", "summary": {"loss": 3.4, "_runtime": 7200}},
        {**base, "id": "c", "created_at": "2025-03-01T00:00:00Z", "heartbeatAt": "2025-03-04T05:00:00Z",
         "summary": {"loss": 3.3}},
        {**base, "id": "d", "summary": {"loss": 3.2}},
        {**base, "id": "e", "state": "running", "summary": {"loss": 3.2, "_timestamp": 1_740_787_200}},
    ]  # fmt: skip
    (tmp_path / "runs.json").write_text(json.dumps(runs))

    payloads = {p["external_id"]: p for p in (_payload(r) for r in read_wandb_export(tmp_path / "runs.json"))}

    assert payloads["wandb-a"]["trained_at"] == "2025-03-01T00:00:00.500000Z"
    assert payloads["wandb-b"]["trained_at"] == "2025-03-01T02:00:00Z"  # W&B's naive times are UTC
    assert payloads["wandb-c"]["trained_at"] == "2025-03-04T05:00:00Z"
    assert "trained_at" not in payloads["wandb-d"]  # no time at all: the server dates it at registration
    assert "trained_at" not in payloads["wandb-e"]  # still running: not finished yet
    assert "_timestamp" not in json.dumps(payloads["wandb-a"]["metadata"])


def test_wandb_csv_runs_are_dated_by_created_plus_runtime(tmp_path):
    export = tmp_path / "runs.csv"
    export.write_text(
        "Name,State,ID,Created,Runtime,n,d,loss\n"
        "r1,finished,x1,2025-02-03T04:05:06.000Z,3600,1e6,2e7,3.5\n"
        "r2,finished,x2,2025-02-03T04:05:06.000Z,,1e6,2e7,3.5\n"
    )
    first, second = (_payload(run) for run in read_wandb_export(export))
    assert first["trained_at"] == "2025-02-03T05:05:06Z"
    assert second["trained_at"] == "2025-02-03T04:05:06Z"  # without a runtime: the created time


def test_a_mapped_trained_at_wins_and_unreadable_times_name_the_field():
    run = TrackerRun("wandb", "1", "r", "finished", {"n": 10, "d": 10, "loss": 3.0, "done": 1_746_057_600_000},
                     times={"end": 1_740_787_200})  # fmt: skip
    assert _payload(run)["trained_at"] == "2025-03-01T00:00:00Z"
    assert _payload(run, {**FIELDS, "trained_at": "done"})["trained_at"] == "2025-05-01T00:00:00Z"  # milliseconds
    unreadable = TrackerRun("wandb", "1", "r", "finished", {**run.values, "done": "soon"})
    with pytest.raises(MappingError, match="trained_at: cannot read 'soon'"):
        _payload(unreadable, {**FIELDS, "trained_at": "done"})
    with pytest.raises(MappingError, match="trained_at: cannot read the run's times"):
        _payload(TrackerRun("wandb", "1", "r", "finished", run.values, times={"created": "March"}))
    assert end_time({}) is None


def test_mlflow_runs_are_dated_by_their_end_time(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from bitscale_client.importers.mlflow_store import read_mlflow_runs

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("dated")
    with mlflow.start_run(run_name="done") as finished:
        mlflow.log_params({"n": 1_000_000, "d": 20_000_000})
        mlflow.log_metrics({"loss": 3.5})
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    ended_ms = client.get_run(finished.info.run_id).info.end_time
    running = client.create_run(client.get_experiment_by_name("dated").experiment_id)
    client.log_param(running.info.run_id, "n", 1_000_000)
    client.log_param(running.info.run_id, "d", 20_000_000)

    payloads = {p["name"] or "running": p for p in (_payload(r) for r in read_mlflow_runs(uri, "dated"))}

    expected = datetime.fromtimestamp(ended_ms / 1000, UTC)
    assert datetime.fromisoformat(payloads["done"]["trained_at"]) == expected
    assert payloads["done"]["trained_at"].endswith("Z")
    running_payload = next(p for p in payloads.values() if p["status"] == "running")
    assert "trained_at" not in running_payload


# Against the real server ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_real_server_stores_the_clients_datetime(live_server, tmp_path):
    team = Team.objects.create(slug="dated", name="Dated")
    key = api_key_create(team=team, label="client tests")[1]
    with Client(live_server.url, key, spool_path=tmp_path / "spool.jsonl") as client:
        old = client.log_run(**RUN, external_id="old", trained_at=datetime(2024, 11, 2, 3, 4, 5, tzinfo=UTC))
        new = client.log_run(**RUN, external_id="new")
        assert not isinstance(old, Spooled)
        assert not isinstance(new, Spooled)
        assert old.trained_at == "2024-11-02T03:04:05Z"
        assert new.trained_at is not None
        assert datetime.fromisoformat(new.trained_at) > datetime.now(UTC) - timedelta(minutes=5)
        listed = [r.external_id for r in client.list_runs(trained_before=datetime(2025, 1, 1, tzinfo=UTC))]
        assert listed == ["old"]
