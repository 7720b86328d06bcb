"""The MLflow endpoints at the HTTP level: limits, non-finite metrics, error shapes and codes, team isolation."""

from __future__ import annotations

import json
import math

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from mlflow_compat import api as mlflow_api
from mlflow_compat import selectors as mlflow_selectors
from mlflow_compat import services as mlflow_services
from mlflow_compat.models import MlflowRun, PendingMetricPoint
from runs import services as run_services
from runs.models import MetricPoint, Run, Team
from runs.services import api_key_create
from tests.mlflow_compat.helpers import API, get, post

pytestmark = pytest.mark.django_db


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    return str(body["message"])


def _run(api: APIClient, *, experiment: str = "sweep", sizes: bool = True) -> str:
    created = post(api, "experiments/create", {"name": experiment})
    experiment_id = created.json()["experiment_id"] if created.status_code == 200 else "0"
    run_id = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": 1_700_000_000_000}).json()["run"][
        "info"
    ]["run_id"]
    if sizes:
        params = [{"key": "n_params", "value": "1e6"}, {"key": "n_tokens", "value": "2e7"}]
        assert post(api, "runs/log-batch", {"run_id": run_id, "params": params}).status_code == 200
    return run_id


def _metrics(count: int, *, key: str = "loss") -> list[dict]:
    return [{"key": key, "value": 5.0 - i / 1000, "timestamp": 1_700_000_000_000 + i, "step": i} for i in range(count)]


# Success bodies ---------------------------------------------------------------------------------------------


def test_every_success_is_exactly_200_with_mlflow_bodies(api):
    created = post(api, "experiments/create", {"name": "sweep", "tags": [{"key": "a", "value": "b"}]})
    experiment_id = created.json()["experiment_id"]
    run = post(api, "runs/create", {"experiment_id": experiment_id, "run_name": "r1", "start_time": 1})
    run_id = run.json()["run"]["info"]["run_id"]
    responses = [
        created,
        run,
        get(api, "experiments/get", {"experiment_id": experiment_id}),
        get(api, "experiments/get-by-name", {"experiment_name": "sweep"}),
        post(api, "experiments/search", {"max_results": 10}),
        post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 3.0, "timestamp": 5, "step": 1}),
        post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}),
        post(api, "runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        post(api, "runs/log-batch", {"run_id": run_id}),
        get(api, "runs/get", {"run_id": run_id}),
        post(api, "runs/search", {"experiment_ids": [experiment_id]}),
        get(api, "metrics/get-history", {"run_id": run_id, "metric_key": "loss"}),
        post(api, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 9}),
        post(api, "runs/delete", {"run_id": run_id}),
    ]

    assert [r.status_code for r in responses] == [200] * len(responses)
    assert created.json() == {"experiment_id": experiment_id}
    assert run.json()["run"]["info"]["status"] == "RUNNING"
    assert responses[5].json() == {}
    assert responses[9].json()["run"]["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert responses[11].json() == {"metrics": [{"key": "loss", "value": 3.0, "timestamp": 5, "step": 1}]}
    assert responses[12].json()["run_info"]["end_time"] == 9


def test_experiment_names_are_unique_per_team(api):
    assert post(api, "experiments/create", {"name": "sweep"}).status_code == 200

    _error(post(api, "experiments/create", {"name": "sweep"}), 400, "RESOURCE_ALREADY_EXISTS")
    _error(post(api, "experiments/create", {"name": "Default"}), 400, "RESOURCE_ALREADY_EXISTS")
    _error(post(api, "experiments/create", {"name": ""}), 400, "INVALID_PARAMETER_VALUE")


# Limits -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "params", "tags", "what"),
    [
        (1001, 0, 0, "1000 metrics"),
        (0, 101, 0, "100 params"),
        (0, 0, 101, "100 tags"),
        (1000, 1, 0, "1000 metrics, params, and tags"),
    ],
)
def test_batch_limits_are_mlflows(api, metrics, params, tags, what):
    run_id = _run(api, sizes=False)
    body = {
        "run_id": run_id,
        "metrics": _metrics(metrics),
        "params": [{"key": f"p{i}", "value": "1"} for i in range(params)],
        "tags": [{"key": f"t{i}", "value": "1"} for i in range(tags)],
    }

    message = _error(post(api, "runs/log-batch", body), 400, "INVALID_PARAMETER_VALUE")

    assert what in message
    assert not MlflowRun.objects.get(run_id=run_id).params
    assert not PendingMetricPoint.objects.exists()


def test_a_batch_at_the_limits_is_accepted(api):
    run_id = _run(api)
    body = {"run_id": run_id, "metrics": _metrics(900), "params": [{"key": f"p{i}", "value": "1"} for i in range(100)]}

    assert post(api, "runs/log-batch", body).status_code == 200
    assert MetricPoint.objects.count() == 900


def test_a_batch_over_one_megabyte_is_refused(api):
    run_id = _run(api)
    tags = [{"key": f"t{i}", "value": "x" * 7999} for i in range(100)]  # 800 kB
    params = [{"key": f"p{i}", "value": "y" * 5999} for i in range(50)]  # 300 kB

    message = _error(
        post(api, "runs/log-batch", {"run_id": run_id, "tags": tags, "params": params}), 400, "INVALID_PARAMETER_VALUE"
    )

    assert "1000000 bytes" in message
    assert "t0" not in MlflowRun.objects.get(run_id=run_id).tags


def test_values_over_mlflows_lengths_are_refused(api):
    run_id = _run(api)

    _error(
        post(api, "runs/log-parameter", {"run_id": run_id, "key": "p", "value": "x" * 6001}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(
        post(api, "runs/set-tag", {"run_id": run_id, "key": "k" * 251, "value": "v"}), 400, "INVALID_PARAMETER_VALUE"
    )


def test_a_param_cannot_change_and_nothing_of_the_batch_is_written(api):
    run_id = _run(api)
    post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})

    body = {"run_id": run_id, "params": [{"key": "lr", "value": "0.2"}], "metrics": _metrics(3)}
    _error(post(api, "runs/log-batch", body), 400, "INVALID_PARAMETER_VALUE")

    assert MlflowRun.objects.get(run_id=run_id).params["lr"] == "0.1"
    assert not MetricPoint.objects.exists()


def test_past_the_history_bound_points_are_dropped_and_counted(api, monkeypatch):
    monkeypatch.setattr(run_services, "MAX_METRIC_POINTS_PER_RUN", 10)
    monkeypatch.setattr(mlflow_services, "MAX_METRIC_POINTS_PER_RUN", 10)
    run_id = _run(api)

    post(api, "runs/log-batch", {"run_id": run_id, "metrics": _metrics(8)})
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [*_metrics(8, key="other")]})

    assert MetricPoint.objects.count() == 10
    tags = {t["key"]: t["value"] for t in get(api, "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]}
    assert tags["bitscale.history_dropped"] == "6"
    metrics = {m["key"]: m["step"] for m in get(api, "runs/get", {"run_id": run_id}).json()["run"]["data"]["metrics"]}
    assert metrics == {"loss": 7, "other": 7}  # the latest values still follow


# Non-finite metrics -----------------------------------------------------------------------------------------


def test_nan_and_infinities_are_stored_as_such(api):
    run_id = _run(api)
    metrics = [
        {"key": "loss", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "loss", "value": "Infinity", "timestamp": 2, "step": 1},
        {"key": "loss", "value": "-Infinity", "timestamp": 3, "step": 2},
        {"key": "loss", "value": 2.5, "timestamp": 4, "step": 3},
    ]

    assert post(api, "runs/log-batch", {"run_id": run_id, "metrics": metrics}).status_code == 200

    history = get(api, "metrics/get-history", {"run_id": run_id, "metric_key": "loss"}).json()["metrics"]
    assert [m["value"] for m in history] == ["NaN", "Infinity", "-Infinity", 2.5]
    stored = list(MetricPoint.objects.order_by("step").values_list("value", flat=True))
    assert stored[0] is None  # NULL is NaN
    assert stored[1:] == [math.inf, -math.inf, 2.5]


def test_a_non_numeric_metric_value_is_refused(api):
    run_id = _run(api)

    message = _error(
        post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": "low", "timestamp": 1}),
        400,
        "INVALID_PARAMETER_VALUE",
    )

    assert "value" in message


# Errors and isolation ---------------------------------------------------------------------------------------


def test_without_a_key_it_is_unauthenticated(anonymous):
    _error(anonymous.get(f"{API}/experiments/get-by-name", {"experiment_name": "x"}), 401, "UNAUTHENTICATED")


def test_an_unknown_key_is_unauthenticated(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer bsk_nope")
    _error(anonymous.post(f"{API}/runs/create", {}, format="json"), 401, "UNAUTHENTICATED")


def test_a_read_only_key_cannot_write_but_may_search(api, mlflow_team):
    run_id = _run(api)
    read_only = APIClient()
    read_only.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=mlflow_team, read_only=True)[1]}")

    _error(
        post(read_only, "runs/log-parameter", {"run_id": run_id, "key": "a", "value": "b"}), 403, "PERMISSION_DENIED"
    )
    _error(post(read_only, "experiments/create", {"name": "x"}), 403, "PERMISSION_DENIED")
    experiment_id = get(read_only, "experiments/get-by-name", {"experiment_name": "sweep"}).json()["experiment"][
        "experiment_id"
    ]
    [found] = post(read_only, "runs/search", {"experiment_ids": [experiment_id]}).json()["runs"]
    assert found["info"]["run_id"] == run_id
    assert post(read_only, "experiments/search", {}).status_code == 200


def test_another_teams_experiments_and_runs_do_not_exist(api):
    run_id = _run(api, experiment="mine")
    experiment_id = get(api, "experiments/get-by-name", {"experiment_name": "mine"}).json()["experiment"][
        "experiment_id"
    ]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=Team.objects.create(slug='other'))[1]}")

    _error(get(other, "runs/get", {"run_id": run_id}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(post(other, "runs/update", {"run_id": run_id, "status": "KILLED"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(post(other, "runs/delete", {"run_id": run_id}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(get(other, "metrics/get-history", {"run_id": run_id, "metric_key": "loss"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(get(other, "experiments/get", {"experiment_id": experiment_id}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(get(other, "experiments/get-by-name", {"experiment_name": "mine"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(post(other, "runs/search", {"experiment_ids": [experiment_id]}), 404, "RESOURCE_DOES_NOT_EXIST")
    names = [e["name"] for e in post(other, "experiments/search", {}).json()["experiments"]]
    assert names == ["Default"]  # its own default experiment, not ours
    assert post(other, "runs/search", {"experiment_ids": ["0"]}).json() == {"runs": []}
    assert MlflowRun.objects.get(run_id=run_id).status == "RUNNING"


@pytest.mark.parametrize(
    "path",
    ["/api/2.0/mlflow/registered-models/list", "/api/2.0/preview/mlflow/x", "/api/3.0/mlflow/traces", "/api/2.0/"],
)
def test_other_paths_under_2_0_and_3_0_are_endpoint_not_found(api, anonymous, path):
    _error(api.get(path), 404, "ENDPOINT_NOT_FOUND")
    _error(anonymous.post(path, {}, format="json"), 404, "ENDPOINT_NOT_FOUND")


def test_a_wrong_method_is_endpoint_not_found(api):
    _error(api.get(f"{API}/runs/create"), 404, "ENDPOINT_NOT_FOUND")


def test_artifacts_are_refused_with_a_clear_message(api):
    message = _error(api.get("/api/2.0/mlflow-artifacts/artifacts/0/x/model.pkl"), 404, "ENDPOINT_NOT_FOUND")
    assert "no artifacts" in message
    _error(
        post(api, "experiments/create", {"name": "s3", "artifact_location": "s3://b"}), 400, "INVALID_PARAMETER_VALUE"
    )


def test_over_the_rate_limit_it_is_request_limit_exceeded(api, settings):
    settings.API_RATE_LIMIT = "2/min"
    get(api, "experiments/get-by-name", {"experiment_name": "Default"})
    get(api, "experiments/get-by-name", {"experiment_name": "Default"})

    response = get(api, "experiments/get-by-name", {"experiment_name": "Default"})

    _error(response, 429, "REQUEST_LIMIT_EXCEEDED")
    assert int(response["Retry-After"]) >= 1


def test_a_lost_database_is_temporarily_unavailable(api, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(mlflow_api.selectors, "experiment_get_by_name", down)

    response = get(api, "experiments/get-by-name", {"experiment_name": "x"})

    _error(response, 503, "TEMPORARILY_UNAVAILABLE")
    assert response["Retry-After"]


def test_malformed_json_is_invalid_parameter_value(api):
    response = api.generic("POST", f"{API}/runs/create", "{nope", content_type="application/json")
    _error(response, 400, "INVALID_PARAMETER_VALUE")


# Search -----------------------------------------------------------------------------------------------------


def test_search_filters_orders_and_pages(api):
    experiment_id = post(api, "experiments/create", {"name": "s"}).json()["experiment_id"]
    ids = []
    for i in range(5):
        run_id = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": i}).json()["run"]["info"][
            "run_id"
        ]
        post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 5 - i, "timestamp": 1})
        post(api, "runs/set-tag", {"run_id": run_id, "key": "group", "value": "a" if i % 2 else "b"})
        ids.append(run_id)

    def search(**body):
        return post(api, "runs/search", {"experiment_ids": [experiment_id], **body}).json()

    first = search(max_results=2)
    second = search(max_results=2, page_token=first["next_page_token"])
    by_loss = search(order_by=["metrics.loss ASC"])
    filtered = search(filter="metrics.loss <= 3 and tags.group = 'b'")

    assert [r["info"]["run_id"] for r in first["runs"]] == [ids[4], ids[3]]
    assert [r["info"]["run_id"] for r in second["runs"]] == [ids[2], ids[1]]
    assert [r["info"]["run_id"] for r in by_loss["runs"]] == ids[::-1]
    assert [r["info"]["run_id"] for r in filtered["runs"]] == [ids[4], ids[2]]
    _error(
        post(api, "runs/search", {"experiment_ids": [experiment_id], "filter": "loss <"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )


# Bitscale's own view of the history -------------------------------------------------------------------------


def test_bitscale_api_pages_a_runs_metric_history(api, mlflow_key):
    run_id = _run(api)
    post(api, "runs/log-batch", {"run_id": run_id, "metrics": [*_metrics(30), *_metrics(5, key="acc")]})
    post(api, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": "NaN", "timestamp": 9, "step": 99})
    run = Run.objects.get()
    bitscale = APIClient()
    bitscale.credentials(HTTP_AUTHORIZATION=f"Bearer {mlflow_key}")

    first = bitscale.get(f"/api/v1/runs/{run.pk}/metrics/", {"key": "loss", "page_size": 20}).json()
    second = bitscale.get(first["next"]).json()
    everything = bitscale.get(f"/api/v1/runs/{run.pk}/metrics/").json()["results"]

    assert [p["step"] for p in first["results"]] == list(range(20))
    assert [p["step"] for p in second["results"]] == [*range(20, 30), 99]
    assert second["results"][-1]["value"] == "NaN"
    assert second["next"] is None
    assert len(everything) == 36
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=Team.objects.create(slug='o'))[1]}")
    assert other.get(f"/api/v1/runs/{run.pk}/metrics/").status_code == 404


def test_an_evaluation_at_or_above_weight_bits_is_left_out_and_the_run_written(api):
    run_id = _run(api)
    params = [{"key": "weight_bits", "value": "4"}]
    metrics = [
        {"key": "final_loss", "value": 3.0, "timestamp": 1},
        {"key": "ptq_loss/8", "value": 3.1, "timestamp": 1},
        {"key": "ptq_loss/3", "value": 3.4, "timestamp": 1},
    ]

    assert post(api, "runs/log-batch", {"run_id": run_id, "params": params, "metrics": metrics}).status_code == 200

    run = Run.objects.get()
    assert (run.weight_bits, run.final_loss) == (4.0, 3.0)
    assert list(run.evaluations.values_list("post_train_bits", flat=True)) == [3.0]
    assert "weight_bits" in MlflowRun.objects.get(run_id=run_id).mapping_error


def test_a_malformed_mapping_at_experiment_creation_is_refused(api):
    tags = [{"key": "bitscale.mapping", "value": '{"fields": {"n_params": 3}}'}]

    message = _error(post(api, "experiments/create", {"name": "m", "tags": tags}), 400, "INVALID_PARAMETER_VALUE")

    assert "fields.n_params" in message


def test_an_update_writes_only_what_changed_in_mlflow(api):
    run_id = _run(api)
    run = Run.objects.get()
    run_services.run_update(run=run, fields={"excluded": True, "exclusion_reason": "odd data", "name": "renamed"})

    post(api, "runs/set-tag", {"run_id": run_id, "key": "bitscale.dataset", "value": "c4"})
    post(api, "runs/update", {"run_id": run_id, "status": "KILLED", "end_time": 9})

    run.refresh_from_db()
    assert (run.dataset, run.status) == ("c4", "failed")
    assert (run.excluded, run.exclusion_reason, run.name) == (True, "odd data", "renamed")  # Bitscale's edits kept


def test_numbers_beyond_int64_and_odd_ids_are_refused_not_crashes(api):
    run_id = _run(api)
    huge = 2**63

    _error(
        post(api, "runs/log-metric", {"run_id": run_id, "key": "l", "value": 1, "timestamp": 1, "step": huge}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    _error(post(api, "runs/update", {"run_id": run_id, "end_time": huge}), 400, "INVALID_PARAMETER_VALUE")
    _error(get(api, "experiments/get", {"experiment_id": "9" * 40}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(get(api, "experiments/get", {"experiment_id": "-1"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(post(api, "runs/create", {"experiment_id": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(api.post(f"{API}/runs/create", [1, 2], format="json"), 400, "INVALID_PARAMETER_VALUE")
    _error(post(api, "runs/log-batch", {"run_id": run_id, "metrics": "nope"}), 400, "INVALID_PARAMETER_VALUE")
    _error(post(api, "runs/log-batch", {"run_id": run_id, "params": [{"value": "v"}]}), 400, "INVALID_PARAMETER_VALUE")
    _error(post(api, "runs/update", {"run_id": run_id, "status": "DONE"}), 400, "INVALID_PARAMETER_VALUE")
    _error(post(api, "runs/search", {"experiment_ids": ["0"], "max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    _error(post(api, "runs/search", {"experiment_ids": ["0"], "page_token": "%%"}), 400, "INVALID_PARAMETER_VALUE")


ODD_BODIES = [
    {},
    {"run_id": 5, "experiment_id": 5, "name": 5, "key": 5, "value": 5},
    {"run_id": None, "experiment_id": None, "experiment_name": None},
    {"run_id": [], "experiment_ids": "0", "tags": "x", "params": {}, "metrics": [5]},
    {"run_id": "nope", "experiment_id": "0", "tags": [5], "max_results": "many", "order_by": "x", "filter": 5},
    {"experiment_id": {"a": 1}, "run_name": ["x"], "start_time": "soon", "status": 5, "metric_key": []},
    {"experiment_ids": ["0"], "filter": 5, "order_by": [5]},
    {"experiment_ids": ["0"], "filter": "params.x = 'y'", "order_by": "attributes.start_time"},
    {"experiment_ids": [None, 0], "view_type": 7, "run_view_type": [], "page_token": 5},
]


@pytest.mark.parametrize("endpoint", sorted(mlflow_api.ENDPOINTS))
@pytest.mark.parametrize("body", ODD_BODIES)
def test_odd_bodies_get_an_mlflow_error_never_a_5xx(api, endpoint, body):
    view = mlflow_api.ENDPOINTS[endpoint]
    if issubclass(view, mlflow_api.GetView):
        response = api.get(f"{API}/{endpoint}", {k: v for k, v in body.items() if isinstance(v, str | int)})
    else:
        response = post(api, endpoint, body)

    assert response.status_code < 500, response.content
    if response.status_code != 200:
        assert set(response.json()) == {"error_code", "message"}


def test_final_loss_is_the_value_at_the_highest_step_whatever_the_logging_order(api):
    run_id = _run(api)
    late = {"run_id": run_id, "key": "final_loss", "value": 3.0, "timestamp": 1, "step": 10}
    early = {"run_id": run_id, "key": "final_loss", "value": 4.0, "timestamp": 2, "step": 5}

    post(api, "runs/log-metric", late)
    post(api, "runs/log-metric", early)
    post(api, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 3})

    assert (Run.objects.get().final_loss, Run.objects.get().status) == (3.0, "finished")


# Refusals made before a view runs -----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_in_mlflows_shape(api, settings):
    settings.REQUEST_BODY_MAX_BYTES = 1000
    body = {"run_id": "x" * 32, "params": [{"key": "k", "value": "v" * 2000}]}
    message = _error(post(api, "runs/log-batch", body), 413, "INVALID_PARAMETER_VALUE")
    assert "limit is 1000 bytes" in message
    # Bitscale's own API keeps its shape for the same refusal.
    response = api.post("/api/v1/runs/", {"name": "y" * 2000}, format="json")
    assert response.status_code == 413
    assert "errors" in response.json()


def test_a_chunked_body_the_server_cannot_end_is_refused_in_mlflows_shape(api):
    # A server that does not decode chunks hands Django no Content-Length (the test client would set one).
    response = api.post(
        f"{API}/runs/log-batch",
        b'{"run_id": "x"}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert "Content-Length" in _error(response, 411, "INVALID_PARAMETER_VALUE")


def test_a_database_lost_outside_a_view_is_temporarily_unavailable_in_mlflows_shape():
    from config.middleware import database_unavailable_response
    from mlflow_compat.middleware import mlflow_shaped

    response = mlflow_shaped(database_unavailable_response())
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert body["message"].startswith("The database is unavailable")
    assert response["Retry-After"] == "5"


def test_text_the_database_cannot_hold_is_refused_by_name_before_any_query(api):
    # PostgreSQL refuses NUL in text and jsonb, and a lone surrogate cannot be encoded as UTF-8.
    message = _error(get(api, "experiments/get-by-name", {"experiment_name": "a\x00b"}), 400, "INVALID_PARAMETER_VALUE")
    assert "experiment_name" in message
    assert "NUL" in message
    run_id = _run(api)
    before = MlflowRun.objects.get(run_id=run_id).params
    body = {"run_id": run_id, "params": [{"key": "note", "value": "\ud800"}]}
    response = api.post(f"{API}/runs/log-batch", json.dumps(body), content_type="application/json")  # \ud800 escaped
    assert "'params'" in _error(response, 400, "INVALID_PARAMETER_VALUE")
    assert MlflowRun.objects.get(run_id=run_id).params == before


def test_a_status_that_is_not_a_string_is_a_bad_parameter(api):
    run_id = _run(api)
    assert "Invalid status" in _error(
        post(api, "runs/update", {"run_id": run_id, "status": ["FINISHED"]}), 400, "INVALID_PARAMETER_VALUE"
    )


def test_a_metric_value_past_a_doubles_range_is_a_bad_parameter(api):
    run_id = _run(api)
    metric = {"key": "loss", "value": 10**400, "timestamp": 1, "step": 1}
    response = api.post(
        f"{API}/runs/log-batch", json.dumps({"run_id": run_id, "metrics": [metric]}), content_type="application/json"
    )
    assert "metrics[0].value" in _error(response, 400, "INVALID_PARAMETER_VALUE")
    assert not MetricPoint.objects.exists()
    assert not PendingMetricPoint.objects.exists()


def test_a_search_without_filter_pages_in_the_database_in_the_same_order_as_a_filtered_one(
    api, mlflow_team, django_assert_max_num_queries
):
    experiment_id = post(api, "experiments/create", {"name": "paged"}).json()["experiment_id"]
    experiment = mlflow_selectors.experiment_get(team=mlflow_team, experiment_id=experiment_id)
    starts = [5, 5, None, 9, 1, 5, None, 7, 3, 9, 2, 8, 5, 4]
    for i, start in enumerate(starts):
        MlflowRun.objects.create(
            run_id=f"{(i * 7919) % 97:032x}", team=mlflow_team, experiment=experiment, start_time=start
        )
    MlflowRun.objects.filter(start_time=8).update(lifecycle_stage="deleted")

    def pages(extra: dict) -> list[list[str]]:
        found, token = [], None
        while True:
            body = {"experiment_ids": [experiment_id], "max_results": 4, **extra}
            answer = post(api, "runs/search", {**body, **({"page_token": token} if token else {})}).json()
            found.append([run["info"]["run_id"] for run in answer["runs"]])
            token = answer.get("next_page_token")
            if not token:
                return found

    for view_type in ("ACTIVE_ONLY", "ALL", "DELETED_ONLY"):
        with django_assert_max_num_queries(4):  # key, experiment, one page
            post(api, "runs/search", {"experiment_ids": [experiment_id], "run_view_type": view_type})
        # A filter every run passes takes the path that reads the runs into Python.
        everything = {"run_view_type": view_type, "filter": "attributes.run_name != 'none of them'"}
        assert pages({"run_view_type": view_type}) == pages(everything)
    assert sum(len(page) for page in pages({})) == len(starts) - 1


def test_experiment_ids_and_page_tokens_that_are_not_ids_or_offsets_are_refused(api):
    # int("²") fails although "²".isdigit(); an offset past a bigint fails in the database.
    _error(get(api, "experiments/get", {"experiment_id": "²"}), 404, "RESOURCE_DOES_NOT_EXIST")
    _error(post(api, "runs/search", {"experiment_ids": ["0", "²"]}), 404, "RESOURCE_DOES_NOT_EXIST")
    token = mlflow_api._page_token(2**63)
    _error(post(api, "runs/search", {"experiment_ids": ["0"], "page_token": token}), 400, "INVALID_PARAMETER_VALUE")
    many = {"experiment_ids": [str(i) for i in range(mlflow_api.MAX_SEARCH_EXPERIMENTS + 1)]}
    assert "at most" in _error(post(api, "runs/search", many), 400, "INVALID_PARAMETER_VALUE")
    assert post(api, "runs/search", {"experiment_ids": ["0", "0"]}).json() == {"runs": []}


def test_an_end_time_outside_the_apis_rule_is_not_the_training_date(api):
    # The end time becomes trained_at through the API's own rule (on or after 2000, not in the future).
    run_id = _run(api)
    metrics = [{"key": "final_loss", "value": 3.0, "timestamp": 1, "step": 1}]
    assert post(api, "runs/log-batch", {"run_id": run_id, "metrics": metrics}).status_code == 200
    assert post(api, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 1}).status_code == 200
    mlflow_run = MlflowRun.objects.select_related("bitscale_run").get(run_id=run_id)
    assert mlflow_run.bitscale_run.trained_at.year >= 2000
    assert "trained_at" in mlflow_run.mapping_error
    assert "bitscale.error" in {
        t["key"] for t in get(api, "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]
    }


@pytest.mark.parametrize("sizes", [True, False])  # the Bitscale run's history, or the points pending before it
def test_metric_history_pages_in_logging_order(api, sizes):
    run_id = _run(api, sizes=sizes)
    assert post(api, "runs/log-batch", {"run_id": run_id, "metrics": _metrics(7)}).status_code == 200
    steps, token = [], None
    while True:
        query = {"run_id": run_id, "metric_key": "loss", "max_results": 3, **({"page_token": token} if token else {})}
        body = get(api, "metrics/get-history", query).json()
        steps.append([point["step"] for point in body["metrics"]])
        token = body.get("next_page_token")
        if not token:
            break
    assert steps == [[0, 1, 2], [3, 4, 5], [6]]


def test_schedule_params_logged_through_mlflow_become_the_runs_schedule(api):
    run_id = _run(api)
    params = [
        {"key": "total_steps", "value": "24000"},
        {"key": "peak_lr", "value": "3e-4"},
        {"key": "warmup_steps", "value": "2160"},
        {"key": "lr_schedule", "value": "cosine"},
        {"key": "final_lr", "value": "3e-5"},
    ]

    assert post(api, "runs/log-batch", {"run_id": run_id, "params": params}).status_code == 200

    run = MlflowRun.objects.get(run_id=run_id).bitscale_run
    assert run.schedule == {
        "total_steps": 24000,
        "peak_lr": 3e-4,
        "warmup_steps": 2160,
        "lr_schedule": "cosine",
        "decay_start": None,
        "final_lr": 3e-5,
        "tokens_per_step": None,
    }
