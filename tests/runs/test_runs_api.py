"""The runs contract through the HTTP API (docs/api.md, Runs)."""

import pytest

from runs.models import Evaluation, Run
from tests.factories import EvaluationFactory, RunFactory, payload

pytestmark = pytest.mark.django_db


def test_create_returns_201_with_defaults_filled(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(weight_bits=..., family=...), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["family"] == "default"
    assert (body["weight_bits"], body["activation_bits"], body["kv_bits"]) == (16, 16, 16)
    assert body["number_format"] == "fp"
    assert body["status"] == "finished"
    assert body["param_count"] == "non_embedding"
    assert body["excluded"] is False
    assert body["evaluations"] == []
    assert body["created_at"].endswith("Z")


def test_number_format_defaults_to_int_below_16_bits(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(weight_bits=8, activation_bits=8), format="json")
    assert response.json()["number_format"] == "int"


def test_huge_token_counts_are_exact_integers(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(n_tokens=10**16 - 1, n_params=10**14), format="json")

    assert response.status_code == 201
    fetched = client_rw.get(f"/api/v1/runs/{response.json()['id']}/").json()
    assert fetched["n_tokens"] == 10**16 - 1
    assert fetched["n_params"] == 10**14


def test_integral_float_sizes_are_accepted(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(n_tokens=2e10, n_params=1.5e8), format="json")
    assert response.status_code == 201
    assert (response.json()["n_tokens"], response.json()["n_params"]) == (20_000_000_000, 150_000_000)


def test_create_with_nested_evaluations(client_rw):
    body = payload(
        weight_bits=16,
        evaluations=[{"post_train_bits": 4, "loss": 3.5}, {"post_train_bits": 8, "method": "gptq", "loss": 3.3}],
    )

    response = client_rw.post("/api/v1/runs/", body, format="json")

    assert response.status_code == 201, response.json()
    evaluations = {(e["post_train_bits"], e["method"]): e["loss"] for e in response.json()["evaluations"]}
    assert evaluations == {(4, "rtn"): 3.5, (8, "gptq"): 3.3}


def test_reposting_an_external_id_updates_in_place(client_rw, team):
    body = payload(external_id="r-42", final_loss=3.30)

    first = client_rw.post("/api/v1/runs/", body, format="json")
    again = client_rw.post("/api/v1/runs/", {**body, "final_loss": 3.25}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["final_loss"] == 3.25
    assert Run.objects.filter(team=team).count() == 1


def test_repost_keeps_fields_it_does_not_send(client_rw):
    first = client_rw.post("/api/v1/runs/", payload(external_id="keep", name="first name"), format="json")
    again = client_rw.post("/api/v1/runs/", payload(external_id="keep", final_loss=3.0), format="json")
    assert first.json()["name"] == again.json()["name"] == "first name"


def test_repost_adds_and_replaces_evaluations(client_rw):
    client_rw.post(
        "/api/v1/runs/", payload(external_id="e", evaluations=[{"post_train_bits": 4, "loss": 3.9}]), format="json"
    )
    again = client_rw.post(
        "/api/v1/runs/",
        payload(
            external_id="e", evaluations=[{"post_train_bits": 4, "loss": 3.7}, {"post_train_bits": 6, "loss": 3.4}]
        ),
        format="json",
    )
    assert again.status_code == 200
    assert sorted((e["post_train_bits"], e["loss"]) for e in again.json()["evaluations"]) == [(4, 3.7), (6, 3.4)]


def test_external_ids_are_per_team(client_rw, other_client):
    mine = client_rw.post("/api/v1/runs/", payload(external_id="shared"), format="json")
    theirs = other_client.post("/api/v1/runs/", payload(external_id="shared"), format="json")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


def test_detail_patch_delete(client_rw):
    run_id = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]

    patched = client_rw.patch(
        f"/api/v1/runs/{run_id}/", {"excluded": True, "exclusion_reason": "lr spike"}, format="json"
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["excluded"] is True
    assert client_rw.get(f"/api/v1/runs/{run_id}/").json()["exclusion_reason"] == "lr spike"

    assert client_rw.delete(f"/api/v1/runs/{run_id}/").status_code == 204
    assert client_rw.get(f"/api/v1/runs/{run_id}/").status_code == 404


def test_patch_cannot_strand_evaluations_above_weight_bits(client_rw):
    run_id = client_rw.post(
        "/api/v1/runs/", payload(weight_bits=8, evaluations=[{"post_train_bits": 6, "loss": 3.5}]), format="json"
    ).json()["id"]
    response = client_rw.patch(f"/api/v1/runs/{run_id}/", {"weight_bits": 4}, format="json")
    assert response.status_code == 400
    assert "weight_bits" in response.json()["errors"]
    assert Run.objects.get(pk=run_id).weight_bits == 8


def test_patch_to_an_external_id_already_taken_is_400(client_rw):
    client_rw.post("/api/v1/runs/", payload(external_id="taken"), format="json")
    run_id = client_rw.post("/api/v1/runs/", payload(external_id="mine"), format="json").json()["id"]
    response = client_rw.patch(f"/api/v1/runs/{run_id}/", {"external_id": "taken"}, format="json")
    assert response.status_code == 400
    assert "external_id" in response.json()["errors"]


def test_patch_rejects_evaluations(client_rw):
    run_id = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]
    response = client_rw.patch(f"/api/v1/runs/{run_id}/", {"evaluations": []}, format="json")
    assert response.status_code == 400
    assert "evaluations" in response.json()["errors"]


def test_put_is_not_offered(client_rw):
    run_id = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]
    assert client_rw.put(f"/api/v1/runs/{run_id}/", payload(), format="json").status_code == 405


def test_add_evaluation_then_replace_its_loss(client_rw):
    run_id = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]

    added = client_rw.post(f"/api/v1/runs/{run_id}/evaluations/", {"post_train_bits": 4, "loss": 3.6}, format="json")
    replaced = client_rw.post(
        f"/api/v1/runs/{run_id}/evaluations/", {"post_train_bits": 4, "loss": 3.55}, format="json"
    )
    other_method = client_rw.post(
        f"/api/v1/runs/{run_id}/evaluations/", {"post_train_bits": 4, "method": "gptq", "loss": 3.4}, format="json"
    )

    assert (added.status_code, replaced.status_code, other_method.status_code) == (201, 200, 201)
    assert sorted(Evaluation.objects.filter(run_id=run_id).values_list("method", "loss")) == [
        ("gptq", 3.4),
        ("rtn", 3.55),
    ]


def test_evaluation_at_or_above_weight_bits_is_rejected(client_rw):
    run_id = client_rw.post("/api/v1/runs/", payload(weight_bits=8), format="json").json()["id"]
    response = client_rw.post(f"/api/v1/runs/{run_id}/evaluations/", {"post_train_bits": 8, "loss": 3.6}, format="json")
    assert response.status_code == 400
    assert "post_train_bits" in response.json()["errors"]


def test_bulk_creates_and_updates_in_input_order(client_rw, team):
    client_rw.post("/api/v1/runs/", payload(external_id="old"), format="json")
    runs = [payload(external_id=f"b{i}", evaluations=[{"post_train_bits": 4, "loss": 3.5}]) for i in range(5)]
    runs.insert(2, payload(external_id="old", final_loss=2.9))

    response = client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created"], body["updated"]) == (5, 1)
    by_id = dict(Run.objects.filter(team=team).values_list("id", "external_id"))
    assert [by_id[i] for i in body["ids"]] == [r["external_id"] for r in runs]
    assert Run.objects.get(team=team, external_id="old").final_loss == 2.9
    assert Evaluation.objects.filter(run__team=team).count() == 5


def test_bulk_with_one_bad_run_writes_nothing(client_rw, team):
    runs = [payload(external_id=f"ok{i}") for i in range(5)] + [payload(n_tokens=0)]
    response = client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")
    assert response.status_code == 400
    assert "n_tokens" in response.json()["errors"]["5"]
    assert not Run.objects.filter(team=team).exists()


def test_bulk_rule_failure_is_keyed_by_index(client_rw, team):
    runs = [payload(), payload(status="finished", final_loss=None)]
    response = client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["1"]
    assert "final_loss" in response.json()["errors"]["1"]
    assert not Run.objects.filter(team=team).exists()


def test_bulk_repeated_external_id_is_an_error_on_the_later_item(client_rw, team):
    runs = [payload(external_id="dup"), payload(external_id="x"), payload(external_id="dup")]
    response = client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")
    assert response.status_code == 400
    assert "external_id" in response.json()["errors"]["2"]
    assert not Run.objects.filter(team=team).exists()


def test_bulk_limit_is_1000(client_rw, team):
    response = client_rw.post("/api/v1/runs/bulk/", {"runs": [payload(external_id=None)] * 1001}, format="json")
    assert response.status_code == 400
    assert "runs" in response.json()["errors"]


def test_list_filters(client_rw, team):
    sizes = {"n_params": 2 * 10**8, "n_tokens": 10**9}
    RunFactory(team=team, family="a", weight_bits=4, number_format="int", **{**sizes, "n_params": 10**8})
    RunFactory(team=team, family="a", weight_bits=8, **{**sizes, "n_params": 10**9})
    RunFactory(team=team, family="b", status="running", final_loss=None, **{**sizes, "n_tokens": 5 * 10**9})
    RunFactory(team=team, family="b", excluded=True, exclusion_reason="bad", external_id="ex-1", **sizes)

    def ids(query):
        response = client_rw.get(f"/api/v1/runs/?{query}")
        assert response.status_code == 200, response.json()
        return len(response.json()["results"])

    assert ids("family=a") == 2
    assert ids("weight_bits=4") == 1
    assert ids("status=running") == 1
    assert ids("excluded=true") == 1
    assert ids("excluded=false") == 3
    assert ids("number_format=int") == 1
    assert ids("n_params__gte=500000000") == 1
    assert ids("n_params__lte=100000000") == 1
    assert ids("n_tokens__gte=5000000000") == 1
    assert ids("external_id=ex-1") == 1
    assert ids("created_after=2000-01-01T00:00:00Z") == 4
    assert ids("created_after=2999-01-01T00:00:00Z") == 0


def test_list_ordering_and_cursor_pagination(client_rw, team):
    for i in range(7):
        RunFactory(team=team, n_params=(i + 1) * 10**7)

    first = client_rw.get("/api/v1/runs/?ordering=n_params&page_size=3").json()
    second = client_rw.get(first["next"]).json()
    third = client_rw.get(second["next"]).json()

    sizes = [r["n_params"] for page in (first, second, third) for r in page["results"]]
    assert sizes == sorted(sizes)
    assert len(sizes) == 7
    assert third["next"] is None
    assert first["previous"] is None
    assert second["previous"] is not None


def test_pages_ordered_by_a_tied_field_neither_repeat_nor_skip(client_rw, team):
    expected = {RunFactory(team=team, n_params=10**8).pk for _ in range(9)}

    seen, url = [], "/api/v1/runs/?ordering=-n_params&page_size=2"
    while url:
        page = client_rw.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]

    assert sorted(seen) == sorted(expected)


def test_default_order_is_newest_first(client_rw, team):
    older, newer = RunFactory(team=team), RunFactory(team=team)
    results = client_rw.get("/api/v1/runs/").json()["results"]
    assert [r["id"] for r in results] == [newer.pk, older.pk]


def test_list_query_count_does_not_grow(client_rw, team, django_assert_max_num_queries):
    for run in RunFactory.create_batch(60, team=team):
        EvaluationFactory(run=run)
    # key lookup, key last-used update, page, evaluations, and the families' current fits (capacity density)
    with django_assert_max_num_queries(5):
        response = client_rw.get("/api/v1/runs/?page_size=100")
    assert len(response.json()["results"]) == 60


def test_families_summary(client_rw, team, other_team):
    a1 = RunFactory(team=team, family="a")
    EvaluationFactory(run=a1)
    EvaluationFactory(run=a1, post_train_bits=3)
    RunFactory(team=team, family="a")
    RunFactory(team=team, family="b")
    RunFactory(team=other_team, family="c")

    body = client_rw.get("/api/v1/families/").json()

    assert [(f["family"], f["runs"], f["evaluations"]) for f in body] == [("a", 2, 2), ("b", 1, 0)]
    assert all(f["last_run_at"] for f in body)
