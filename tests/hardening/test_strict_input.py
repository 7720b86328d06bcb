"""Bad input of the second hardening round: each a 400 naming the field (or the body), nothing written.

Metadata PostgreSQL cannot store (NUL, lone surrogates), JSON nested past the depth limit, duplicate keys, and
forged pagination cursors.
"""

import json

import pytest

from apikit.json_limits import MAX_JSON_DEPTH, json_depth
from runs.models import Run
from tests.factories import RunFactory, payload

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/runs/"
UNSTORABLE = [
    ("NUL in a value", {"note": "a\u0000b"}),
    ("NUL in a key", {"a\u0000b": 1}),
    ("lone surrogate in a value", {"note": "x\ud800"}),
    ("lone surrogate in a key", {"\udfff": 1}),
    ("NUL deep inside", {"a": [{"b": ["ok", "\u0000"]}]}),
]


def _post_raw(client, path, text, method="post"):
    return getattr(client, method)(path, data=text.encode(), content_type="application/json")


@pytest.mark.parametrize(("case", "metadata"), UNSTORABLE, ids=[c for c, _ in UNSTORABLE])
def test_unstorable_metadata_is_400_naming_metadata_single_bulk_and_patch(client_rw, case, metadata):
    # Sent as JSON escapes (\u0000, \ud800), as any client's encoder writes them.
    response = _post_raw(client_rw, RUNS, json.dumps(payload(metadata=metadata)))
    assert response.status_code == 400, response.content
    assert "metadata" in response.json()["errors"]

    response = _post_raw(client_rw, f"{RUNS}bulk/", json.dumps({"runs": [payload(), payload(metadata=metadata)]}))
    assert response.status_code == 400
    assert "metadata" in response.json()["errors"]["1"]
    assert Run.objects.count() == 0

    created = client_rw.post(RUNS, payload(metadata={"fine": "yes"}), format="json").json()
    response = _post_raw(client_rw, f"{RUNS}{created['id']}/", json.dumps({"metadata": metadata}), method="patch")
    assert response.status_code == 400
    assert "metadata" in response.json()["errors"]
    assert Run.objects.get(pk=created["id"]).metadata == {"fine": "yes"}


@pytest.mark.parametrize("extra", [r'"\ud800": 1', r'"a\u0000b": 1', r'"status": "\udc00"', r'"family": "x\ud800"'])
def test_unstorable_text_echoed_in_an_error_is_still_a_400(client_rw, extra):
    body = json.dumps(payload())[:-1] + f", {extra}}}"
    response = _post_raw(client_rw, RUNS, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert Run.objects.count() == 0


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_json_nested_past_the_limit_is_400_and_writes_nothing(client_rw, depth):
    for path in (RUNS, f"{RUNS}bulk/", "/api/v1/plans/"):
        response = _post_raw(client_rw, path, _nested(depth))
        assert response.status_code == 400, (path, response.content[:200])
        assert "nested deeper" in json.dumps(response.json()["errors"])
    body = json.dumps(payload())[:-1] + ', "metadata": {"m": ' + _nested(depth) + "}}"
    response = _post_raw(client_rw, RUNS, body)
    assert response.status_code == 400
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("s", 0),
        (None, 0),
        ([], 1),
        ({}, 1),
        ([1, "a"], 1),
        ([[]], 2),
        ({"a": [{"b": 1}]}, 3),
        ([1, [2, [3]], {}], 3),
    ],
)
def test_json_depth_counts_nested_containers(value, depth):
    assert json_depth(value) == depth
    assert json_depth(json.loads(_nested(40))) == 40


def test_metadata_nested_within_the_limit_is_kept(client_rw):
    metadata = {"a": {"b": {"c": [[[{"d": [1, 2, {"e": "deep"}]}]]]}}}
    assert json_depth(metadata) < MAX_JSON_DEPTH
    response = client_rw.post(RUNS, payload(metadata=metadata), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == metadata


def test_duplicate_keys_are_400_naming_the_key_and_write_nothing(client_rw):
    body = json.dumps(payload(n_params=5_000_000))
    forged = body.replace('"n_params": 5000000', '"n_params": -1, "n_params": 5000000')
    assert forged != body
    response = _post_raw(client_rw, RUNS, forged)
    assert response.status_code == 400
    assert "n_params" in response.json()["errors"]

    nested = body[:-1] + ', "metadata": {"seed": 1, "seed": 2}}'
    response = _post_raw(client_rw, RUNS, nested)
    assert response.status_code == 400
    assert "seed" in response.json()["errors"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "query",
    [
        "ordering=n_params&cursor=cD1ub3RhZGF0ZQ==",  # p=notadate, ordered by a number
        "cursor=cD1ub3RhZGF0ZQ==",  # p=notadate, ordered by created_at
        "cursor=!!!not-base64",
        "ordering=-n_tokens&cursor=cj0xJnA9JTAw",  # r=1&p=%00
    ],
)
def test_a_forged_cursor_is_400_invalid_cursor(client_rw, team, query):
    RunFactory.create_batch(3, team=team)
    response = client_rw.get(f"{RUNS}?{query}")
    assert response.status_code == 400, response.content
    assert "Invalid cursor" in response.json()["errors"]["cursor"][0]


def test_a_real_cursor_still_pages(client_rw, team):
    RunFactory.create_batch(5, team=team)
    first = client_rw.get(f"{RUNS}?ordering=n_params&page_size=2").json()
    second = client_rw.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])


@pytest.mark.parametrize("cursor", ["cD1ub3RhZGF0ZQ==", "!!!not-base64"])  # p=notadate (steps are numbers)
def test_a_forged_cursor_on_a_metric_history_is_400_invalid_cursor(client_rw, team, cursor):
    run = RunFactory.create(team=team)
    response = client_rw.get(f"{RUNS}{run.pk}/metrics/?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert "Invalid cursor" in response.json()["errors"]["cursor"][0]
