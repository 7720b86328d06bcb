"""The client against the real Django app on pytest-django's live server."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import httpx
import pytest
from bitscale_client import Client, NotFound, Run, Spooled, ValidationFailed, cli

from runs.models import Run as RunRow
from runs.models import Team
from runs.services import api_key_create
from tests.factories import FitFactory
from tests.published import EPOCH

pytestmark = pytest.mark.django_db(transaction=True)
RUN = {"family": "live", "n_params": 1_000_000, "n_tokens": 20_000_000, "weight_bits": 8, "final_loss": 3.5}


class FlakyTransport(httpx.BaseTransport):
    """Refuses the first `failures` connections, then talks to the real server."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.real.handle_request(request)


@pytest.fixture
def key() -> str:
    team = Team.objects.create(slug="live", name="Live")
    return api_key_create(team=team, label="client tests")[1]


@pytest.fixture
def live(live_server, key, tmp_path) -> Iterator[Client]:
    with Client(live_server.url, key, spool_path=tmp_path / "spool.jsonl") as client:
        yield client


def test_log_run_list_and_export_round_trip(live, tmp_path):
    run = live.log_run(**RUN, evaluations=[{"post_train_bits": 4, "loss": 3.9}])
    assert isinstance(run, Run)
    live.log_evaluation(run.id, post_train_bits=3, loss=4.2, method="gptq")

    [listed] = list(live.list_runs(family="live"))
    live.export_csv(tmp_path / "out.csv", family="live")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))

    assert listed.id == run.id
    assert listed.external_id == run.external_id
    assert sorted((e.post_train_bits, e.method) for e in listed.evaluations) == [(3.0, "gptq"), (4.0, "rtn")]
    assert {(row["post_train_bits"], row["method"]) for row in rows} == {("4.0", "rtn"), ("3.0", "gptq")}
    assert {row["external_id"] for row in rows} == {run.external_id}


def test_reposting_an_external_id_updates_the_same_run(live):
    first = live.log_run(**RUN, external_id="exp-1")
    second = live.log_run(**{**RUN, "final_loss": 3.4}, external_id="exp-1")

    assert isinstance(first, Run)
    assert isinstance(second, Run)
    assert first.id == second.id
    assert RunRow.objects.get().final_loss == 3.4


def test_a_real_400_carries_the_field_errors(live):
    with pytest.raises(ValidationFailed) as caught:
        live.log_run(**{**RUN, "n_parms": 3})

    assert "n_parms" in caught.value.errors
    assert RunRow.objects.count() == 0


def test_law_ranking_and_an_auto_plan_against_the_real_server(live):
    with pytest.raises(NotFound):
        live.law_ranking("live")
    team = Team.objects.get(slug="live")
    FitFactory.create(
        team=team,
        family="live",
        law="chinchilla",
        params=EPOCH,
        metrics={"n_runs": 20.0},
        backtest={"rmse_log": 0.02, "rmse_log_runs": 0.02, "n_held_out_runs": 3.0},
    )

    ranking = live.law_ranking("live")
    plan = live.plan("live", flops=1e21)

    assert ranking["best"] == "chinchilla"
    assert [(e["law"], e["rank"]) for e in ranking["ranking"]] == [("chinchilla", 1)]
    assert plan.law == "chinchilla"
    assert plan.raw["law_selection"]["requested"] == "auto"


def test_retries_reach_a_server_that_refuses_the_first_attempts(live_server, key, tmp_path):
    client = Client(live_server.url, key, transport=FlakyTransport(3), spool_path=tmp_path / "s.jsonl")

    assert isinstance(client.log_run(**RUN), Run)
    assert RunRow.objects.count() == 1


def test_spool_while_down_then_sync_exactly_once(live_server, key, tmp_path):
    spool = tmp_path / "spool.jsonl"
    down = Client(live_server.url, key, transport=FlakyTransport(100), spool_path=spool, max_retries=2)
    spooled = down.log_runs([{**RUN, "n_params": 1_000_000 * (i + 1)} for i in range(3)]).spooled
    assert spooled is not None
    assert spooled.count == 3
    assert isinstance(down.log_run(**RUN, external_id="single"), Spooled)

    up = Client(live_server.url, key, spool_path=spool)
    first, second = up.sync(), up.sync()

    assert (first.uploaded, first.created, first.remaining) == (4, 4, 0)
    assert second.uploaded == 0
    assert RunRow.objects.count() == 4


def test_cli_export_then_import_csv_is_idempotent(live_server, key, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BITSCALE_URL", live_server.url)
    monkeypatch.setenv("BITSCALE_API_KEY", key)
    Client(live_server.url, key).log_runs([{**RUN, "external_id": f"r{i}", "name": f"=formula{i}"} for i in range(3)])

    assert cli.main(["export-csv", str(tmp_path / "runs.csv"), "--family", "live"]) == 0
    RunRow.objects.all().delete()
    assert cli.main(["import-csv", str(tmp_path / "runs.csv")]) == 0
    assert cli.main(["import-csv", str(tmp_path / "runs.csv")]) == 0

    out = capsys.readouterr().out
    assert "3 run(s) sent: 3 created, 0 updated" in out
    assert "3 run(s) sent: 0 created, 3 updated" in out
    assert sorted(RunRow.objects.values_list("name", flat=True)) == ["=formula0", "=formula1", "=formula2"]
