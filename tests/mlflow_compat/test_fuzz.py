"""Random bodies and query strings against every MLflow endpoint, with a real run and experiment to hit.

The schema fuzzing (tests/api, tests/hardening) covers Bitscale's OpenAPI operations; MLflow's endpoints are not
in that schema, so they are fuzzed here: field names MLflow's requests use, each with any JSON value (NaN and
±Infinity tokens, huge integers, nested lists and objects, strings with NUL), and the ids of a real run and
experiment half of the time so the requests reach the services and the mapping. Every answer is a 200 or a
refusal in MLflow's shape, never a 5xx; a refused write changes nothing. Derandomized and bounded.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_compat.api import ENDPOINTS, GetView
from mlflow_compat.models import Experiment, MlflowRun, PendingMetricPoint
from runs.models import Evaluation, MetricPoint, Run
from tests.mlflow_compat.helpers import API, post

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))  # per endpoint
REAL = "<real>"  # replaced by the real run's or experiment's id
FIELDS = [
    "run_id", "run_uuid", "experiment_id", "experiment_ids", "experiment_name", "name", "run_name", "start_time",
    "end_time", "status", "metrics", "params", "tags", "key", "value", "timestamp", "step", "metric_key",
    "max_results", "page_token", "filter", "order_by", "view_type", "run_view_type", "user_id",
    "artifact_location",
]  # fmt: skip
KEYS = st.one_of(
    st.sampled_from(["n_params", "n_tokens", "weight_bits", "final_loss", "ptq_loss/4", "bitscale.family", "loss"]),
    st.text(max_size=12),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400)]),  # past a double's range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e8",
            "2.5",
            "-1",
            "FINISHED",
            "KILLED",
            "ALL",
            "x\x00y",
            "\ud800",
            "²",
            "٣",
            REAL,
        ]
    ),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
ENTITY = st.fixed_dictionaries({}, optional={"key": KEYS, "value": VALUES, "timestamp": VALUES, "step": VALUES})
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(VALUES, st.lists(ENTITY, max_size=4)), max_size=6),
    VALUES,  # not an object at all, now and then
)
QUERIES = st.dictionaries(
    st.sampled_from(FIELDS), st.one_of(st.text(max_size=20), st.sampled_from([REAL, "²", "0"])), max_size=4
)


def _with_ids(value: Any, field: str, run_id: str, experiment_id: str) -> Any:
    if value == REAL:
        return experiment_id if "experiment" in field else run_id
    if isinstance(value, dict):
        return {k: _with_ids(v, k, run_id, experiment_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_ids(v, field, run_id, experiment_id) for v in value]
    return value


def _state() -> tuple[Any, ...]:
    runs = list(MlflowRun.objects.order_by("pk").values_list("params", "tags", "metrics", "status", "end_time"))
    counts = [model.objects.count() for model in (Experiment, MlflowRun, PendingMetricPoint, MetricPoint, Run)]
    return (json.dumps(runs, default=str), *counts, Evaluation.objects.count())


@pytest.fixture
def logged_run(api) -> tuple[str, str]:
    experiment_id = post(api, "experiments/create", {"name": "fuzz-sweep"}).json()["experiment_id"]
    run = post(api, "runs/create", {"experiment_id": experiment_id, "start_time": 1_700_000_000_000}).json()
    run_id = run["run"]["info"]["run_id"]
    params = [{"key": "n_params", "value": "1e8"}, {"key": "n_tokens", "value": "2e9"}]
    metrics = [{"key": "final_loss", "value": 3.1, "timestamp": 1_700_000_000_001, "step": 10}]
    assert post(api, "runs/log-batch", {"run_id": run_id, "params": params, "metrics": metrics}).status_code == 200
    return run_id, experiment_id


def _check(response: Any, endpoint: str) -> None:
    assert response.status_code < 500, (endpoint, response.content)
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body, dict), (endpoint, body)
    else:
        assert set(body) == {"error_code", "message"}, (endpoint, response.status_code, body)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_no_request_to_an_mlflow_endpoint_is_a_server_error(api, logged_run, endpoint):
    run_id, experiment_id = logged_run
    reads = issubclass(ENDPOINTS[endpoint], GetView)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("FUZZ_RANDOM"),  # CI: the same cases every run
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(BODIES if not reads else QUERIES)
    def check(data: Any) -> None:
        data = _with_ids(data, "", run_id, experiment_id)
        if reads:
            _check(api.get(f"{API}/{endpoint}", data), endpoint)
            return
        before = _state()
        raw = json.dumps(data, allow_nan=True)
        response = api.post(f"{API}/{endpoint}", raw, content_type="application/json")
        _check(response, endpoint)
        if response.status_code != 200:
            assert _state() == before, (endpoint, data, response.json())

    check()
