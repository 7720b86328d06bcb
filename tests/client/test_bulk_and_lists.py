"""log_runs batching, list_runs paging, export_csv, fits, predictions and plans against a fake API."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from bitscale_client import Client, Conflict, Fit, NotFound, ValidationFailed

from tests.client.fake_api import RUN, URL


def _runs(count: int) -> list[dict]:
    return [{**RUN, "external_id": f"r{i}"} for i in range(count)]


def test_2500_runs_go_in_batches_of_1000_1000_and_500(api, client):
    seen = []

    result = client.log_runs(_runs(2500), progress=lambda done, total: seen.append((done, total)))

    assert [len(body["runs"]) for body in api.posted("/api/v1/runs/bulk/")] == [1000, 1000, 500]
    assert result.created == 2500
    assert result.ids == list(range(1, 2501))
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_log_runs_adds_external_ids_and_reposting_updates(api, client):
    runs = [dict(RUN) for _ in range(3)]

    client.log_runs(runs)
    sent = api.posted("/api/v1/runs/bulk/")[0]["runs"]
    again = client.log_runs(sent)

    assert all(item["external_id"].startswith("bsc-") for item in sent)
    assert "external_id" not in runs[0]  # the caller's dicts are not modified
    assert (again.created, again.updated) == (0, 3)


def test_bulk_errors_are_keyed_by_position_in_the_whole_input(api, client):
    runs = _runs(1500)
    del runs[1200]["n_params"]

    with pytest.raises(ValidationFailed) as caught:
        client.log_runs(runs)

    assert caught.value.errors == {"1200": {"n_params": ["This field is required."]}}
    assert caught.value.result is not None
    assert caught.value.result.created == 1000  # the first batch was written before the second was refused


def test_batch_size_above_the_server_limit_is_refused(client):
    with pytest.raises(ValueError, match="batch_size"):
        client.log_runs(_runs(2), batch_size=1001)


def _run_json(i: int) -> dict:
    return {"id": i, "external_id": f"r{i}", "family": "f", "n_params": 10, "n_tokens": 20, "final_loss": 3.0}


def test_list_runs_follows_cursor_pages_and_sends_filters(spool_path):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.params.get("cursor") == "2":
            return httpx.Response(200, json={"next": None, "previous": None, "results": [_run_json(3)]})
        page = {"next": f"{URL}/api/v1/runs/?cursor=2", "previous": None, "results": [_run_json(1), _run_json(2)]}
        return httpx.Response(200, json=page)

    client = Client(URL, "k", transport=httpx.MockTransport(handler), spool_path=spool_path)

    runs = list(client.list_runs(family="f", excluded=False, n_params__gte=5))

    assert [run.id for run in runs] == [1, 2, 3]
    assert seen[0].params["family"] == "f"
    assert seen[0].params["excluded"] == "false"
    assert seen[0].params["n_params__gte"] == "5"


def test_export_csv_streams_to_a_file_with_filters(tmp_path, spool_path):
    body = b"id,external_id,n_params\n1,a,10\n"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/runs/export.csv"
        assert request.url.params["family"] == "f"
        return httpx.Response(200, content=body, headers={"Content-Type": "text/csv"})

    client = Client(URL, "k", transport=httpx.MockTransport(handler), spool_path=spool_path)
    target = tmp_path / "out.csv"
    buffer = io.BytesIO()

    assert client.export_csv(target, family="f") == len(body)
    client.export_csv(buffer, family="f")
    assert target.read_bytes() == body == buffer.getvalue()


FIT = {
    "id": 4,
    "family": "f",
    "law": "precision",
    "version": 2,
    "status": "succeeded",
    "params": {"E": 1.7, "A": 400.0, "alpha": 0.34},
    "intervals": {"E": [1.6, 1.8], "alpha": [0.3, 0.38]},
    "fixed": {},
    "metrics": {"n_runs": 40, "r2": 0.99},
    "backtest": {"rmse_log": 0.01, "mean_signed_error": 0.002, "n_held_out": 4},
    "warnings": [],
    "stale": True,
    "pending": False,
}


def test_current_fit_is_typed_and_asks_for_family_and_law(api, client):
    api.responses["/api/v1/fits/current/"] = (200, FIT)

    fit = client.current_fit("f", law="chinchilla")

    assert isinstance(fit, Fit)
    assert fit.params["alpha"] == 0.34
    assert fit.intervals["E"] == (1.6, 1.8)
    assert fit.stale is True
    assert api.requests[0].url.params["law"] == "chinchilla"


def test_no_current_fit_is_not_found(api, client):
    with pytest.raises(NotFound):
        client.current_fit("nothing-yet")


def test_predict_sends_integers_and_reads_the_interval(api, client):
    api.responses["/api/v1/predict/"] = (200, {"loss": 2.5, "interval": [2.4, 2.6], "fit_id": 4, "extrapolation": {}})

    prediction = client.predict("f", n_params=1e9, n_tokens=2e10, weight_bits=4, post_train_bits=4)

    assert prediction.interval == (2.4, 2.6)
    params = api.requests[0].url.params
    assert (params["n_params"], params["n_tokens"], params["weight_bits"]) == ("1000000000", "20000000000", "4")
    assert "kv_bits" not in params


def test_plan_body_follows_the_contract(api, client):
    api.responses["/api/v1/plans/"] = (201, {"id": 1, "recommendation": {"n_params": 1e9}, "warnings": []})

    client.plan("f", gpu_hours=1000, hardware="h100", post_train_bits=4, n_params_max=None)

    body = json.loads(api.requests[0].content)
    assert body == {
        "family": "f",
        "budget": {"gpu_hours": 1000, "hardware": "h100"},
        "constraints": {"post_train_bits": 4},
    }  # no law: the server's default, auto


def test_plan_sends_a_law_only_when_given(api, client):
    api.responses["/api/v1/plans/"] = (201, {"id": 1, "law": "chinchilla", "recommendation": {}, "warnings": []})

    client.plan("f", flops=1e22, law="precision")
    client.plan("f", flops=1e22, law="auto")

    assert [json.loads(r.content)["law"] for r in api.requests] == ["precision", "auto"]


RANKING = {
    "family": "f",
    "best": "chinchilla",
    "ranking": [
        {"law": "chinchilla", "fit_id": 3, "version": 1, "score": 0.01, "rank": 1, "ranked": True, "reason": None},
        {"law": "precision", "fit_id": 4, "version": 2, "score": None, "rank": None, "ranked": False,
         "reason": "fitted before law ranking; refit to rank"},
    ],
}  # fmt: skip


def test_law_ranking_asks_for_the_family_and_returns_the_json(api, client):
    api.responses["/api/v1/fits/ranking/"] = (200, RANKING)

    ranking = client.law_ranking("f")

    assert ranking["best"] == "chinchilla"
    assert [entry["law"] for entry in ranking["ranking"]] == ["chinchilla", "precision"]
    request = api.requests[0]
    assert (request.method, request.url.path, request.url.params["family"]) == ("GET", "/api/v1/fits/ranking/", "f")


def test_law_ranking_of_a_family_without_fits_is_not_found(api, client):
    api.responses["/api/v1/fits/ranking/"] = (404, {"errors": {"detail": ["No succeeded fit."]}})
    with pytest.raises(NotFound):
        client.law_ranking("nothing-yet")


def test_plan_without_a_fit_is_a_conflict(api, client):
    api.responses["/api/v1/plans/"] = (409, {"errors": {"detail": ["no succeeded fit of law precision"]}})

    with pytest.raises(Conflict, match="no succeeded fit"):
        client.plan("f", flops=1e22)


def test_plan_needs_exactly_one_budget(client):
    with pytest.raises(ValueError, match="exactly one budget"):
        client.plan("f")
