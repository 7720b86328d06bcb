"""MLflow's LIKE and ILIKE in search filters: SQL's meaning, in time linear in the text."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflow_compat.search import like, matches, parse_filter


def _by_regex(pattern: str, text: str, ignore_case: bool) -> bool:
    """SQL LIKE spelled as a regex (`%` any run, `_` any one character): correct, but it backtracks."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, (re.IGNORECASE if ignore_case else 0) | re.DOTALL) is not None


@settings(max_examples=2000, derandomize=True)
@given(st.text("ab%_A.\n", max_size=8), st.text("abA.\n%_", max_size=10), st.booleans())
def test_like_means_what_sql_like_means(pattern, text, ignore_case):
    assert like(pattern, text, ignore_case=ignore_case) == _by_regex(pattern, text, ignore_case)


def test_a_pattern_that_makes_a_regex_backtrack_is_answered():
    value = "a" * 6000  # a param value of MLflow's largest size
    assert not like("%a%a%a%a%a%a%a%b", value, ignore_case=False)
    assert like("%a%a%a%a%a%a%a%", value, ignore_case=False)
    record = {"params": {"note": value}}
    assert not matches(parse_filter("params.note LIKE '%a%a%a%a%a%a%a%b'"), record)
    assert matches(parse_filter("params.note ILIKE 'A%a_a'"), record)


# The filter in SQL ------------------------------------------------------------------------------------------

FILTERS = [
    "params.lr = '0.1'",
    "params.lr != '0.1'",
    "params.note LIKE '%a\\\\b%'",
    "params.note LIKE 'x_y'",
    "params.note LIKE '%\\%%'",
    "params.note ILIKE 'X%'",
    "params.missing = ''",
    "params.note = ''",
    "tags.group = 'b'",
    "tags.group != 'b'",
    "tags.`bitscale.run_id` != ''",
    "tags.`bitscale.error` != ''",
    "tags.`bitscale.error` LIKE '%n_params%'",
    "metrics.loss < 3",
    "metrics.loss >= 3",
    "metrics.loss != 3",
    "metrics.loss = 3",
    "metrics.loss > -1e308",
    "metrics.loss < 1e308",
    "metrics.missing > 0",
    "attributes.status = 'FINISHED'",
    "attributes.status != 'RUNNING'",
    "attributes.run_name LIKE 'r_1%'",
    "attributes.run_name ILIKE 'R1%'",
    "attributes.start_time >= 1700000000005",
    "attributes.end_time < 1700000001000",
    "attributes.status = 3",
    "attributes.start_time = '1700000000003'",
    "attributes.artifact_uri = 'x'",
    "metrics.loss <= 3 and tags.group = 'b' and params.lr = '0.1'",
    "metrics.loss < 4 and attributes.run_name ILIKE '%1'",
]


@pytest.fixture
def logged_runs(api):
    """Runs whose params, tags and metrics exercise every way a value can be missing, odd or non-finite."""
    from tests.mlflow_compat.helpers import post

    experiment_id = post(api, "experiments/create", {"name": "sql-search"}).json()["experiment_id"]
    losses = [2.5, 3, 3.5, "NaN", "Infinity", "-Infinity", None, 1e-300, -0.0, 4]
    notes = ["a\\b", "x_y", "xzy", "50%", "", "X-ray", None, "xay", "a\\\\b", "ünï"]
    for i in range(len(losses)):
        run = post(
            api,
            "runs/create",
            {"experiment_id": experiment_id, "run_name": f"r{i}", "start_time": 1700000000000 + i},
        ).json()["run"]["info"]
        params = [{"key": "lr", "value": "0.1" if i % 2 else "0.2"}]
        if notes[i] is not None:
            params.append({"key": "note", "value": notes[i]})
        if i % 3 == 0:
            params += [{"key": "n_params", "value": "1e8"}, {"key": "n_tokens", "value": "1e9"}]
        metrics = [] if losses[i] is None else [{"key": "loss", "value": losses[i], "timestamp": 1, "step": 0}]
        tags = [{"key": "group", "value": "ab"[i % 2]}] if i != 4 else []
        assert (
            post(
                api, "runs/log-batch", {"run_id": run["run_id"], "params": params, "metrics": metrics, "tags": tags}
            ).status_code
            == 200
        )
        if i % 4 != 1:
            body = {"run_id": run["run_id"], "status": "FINISHED", "end_time": 1700000000500 + 100 * i}
            assert post(api, "runs/update", body).status_code == 200
    return experiment_id


@pytest.mark.parametrize("text", FILTERS)
def test_a_filter_decided_in_sql_finds_what_the_python_filter_finds(api, logged_runs, text):
    from mlflow_compat.api import _search_record
    from mlflow_compat.models import MlflowRun
    from tests.mlflow_compat.helpers import post

    everything = MlflowRun.objects.filter(experiment_id=int(logged_runs)).select_related("experiment")
    ordered = sorted(everything, key=lambda run: (-(run.start_time or 0), run.run_id))
    expected = [run.run_id for run in ordered if matches(parse_filter(text), _search_record(run))]
    found, token = [], None
    while True:  # two at a time: the pages the database cuts are the pages Python cut
        body = {"experiment_ids": [logged_runs], "filter": text, "max_results": 2}
        answer = post(api, "runs/search", {**body, **({"page_token": token} if token else {})}).json()
        found += [run["info"]["run_id"] for run in answer.get("runs", [])]
        token = answer.get("next_page_token")
        if not token:
            break
    assert found == expected


def test_the_sql_filter_reads_only_the_runs_it_finds(api, logged_runs, django_assert_max_num_queries):
    from django.db import connection

    from mlflow_compat import selectors
    from mlflow_compat.models import MlflowRun

    if connection.vendor != "postgresql":
        pytest.skip("the filter is pushed into SQL on PostgreSQL only (SQLite filters in Python)")

    team = MlflowRun.objects.filter(experiment_id=int(logged_runs)).first().team
    experiments = selectors.experiments_get(team=team, experiment_ids=[logged_runs])
    runs, left = selectors.run_search(
        team=team,
        experiments=experiments,
        stages=["active"],
        clauses=parse_filter("params.lr = '0.1' and metrics.loss < 3"),
        page=None,
    )
    assert left == []
    assert [run.params["lr"] for run in runs] == ["0.1"] * len(runs)
    assert 0 < len(runs) < MlflowRun.objects.filter(experiment_id=int(logged_runs)).count() / 2
