"""Query budgets of the write path: a run post, a re-post, and a simplest MLflow run cost a fixed number of queries.

The budgets count what the test database adds (each transaction.atomic() inside the test's transaction is a
SAVEPOINT and a RELEASE). Every request is made once before the measured one, so that the key's last-used
time, written at most once a minute, is not counted.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import FamilyChange, Run
from runs.services import runs_upsert

RUN = {
    "external_id": "q-1",
    "family": "queries",
    "n_params": 10_000_000,
    "n_tokens": 200_000_000,
    "weight_bits": 8,
    "activation_bits": 16,
    "kv_bits": 16,
    "final_loss": 3.1,
    "evaluations": [
        {"post_train_bits": 3, "loss": 3.4},
        {"post_train_bits": 4, "loss": 3.3, "method": "gptq"},
        {"post_train_bits": 4, "loss": 3.35},
    ],
}


def test_post_run_budget_and_response_equals_a_read(client_rw, team, django_assert_max_num_queries):
    client_rw.post("/api/v1/runs/", {**RUN, "external_id": "warm-up"}, format="json")
    # key lookup, savepoint, external_id lookup, run insert, evaluations insert, family change upsert (returning),
    # release, the family's density reference
    with django_assert_max_num_queries(8):
        response = client_rw.post("/api/v1/runs/", RUN, format="json")
    assert response.status_code == 201, response.content
    # The evaluations rendered from memory are those a read returns, in the same order.
    assert response.json() == client_rw.get(f"/api/v1/runs/{response.json()['id']}/").json()


def test_repost_without_evaluations_budget(client_rw, team, django_assert_max_num_queries):
    client_rw.post("/api/v1/runs/", RUN, format="json")
    client_rw.post("/api/v1/runs/", {**RUN, "final_loss": 3.0}, format="json")
    # the same and the stored evaluations (weight_bits is sent), less the insert, plus the run read back
    with django_assert_max_num_queries(10):
        response = client_rw.post("/api/v1/runs/", {"external_id": "q-1", **_fields(final_loss=2.9)}, format="json")
    assert response.status_code == 200, response.content
    assert len(response.json()["evaluations"]) == 3


def _fields(**changes: object) -> dict[str, object]:
    fields = {key: value for key, value in RUN.items() if key not in ("external_id", "evaluations")}
    return {**fields, **changes}


def test_repost_lowering_weight_bits_below_stored_evaluations_is_refused(client_rw, team):
    client_rw.post("/api/v1/runs/", RUN, format="json")
    response = client_rw.post("/api/v1/runs/", {"external_id": "q-1", **_fields(weight_bits=4)}, format="json")
    assert response.status_code == 400
    assert "weight_bits" in response.json()["errors"]
    assert Run.objects.get(external_id="q-1").weight_bits == 8


def test_writes_mark_the_family_and_announce_one_refit_per_pending_episode(
    client_rw, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as first_callbacks:
        client_rw.post("/api/v1/runs/", RUN, format="json")
    change = FamilyChange.objects.get(team=team, family="queries")
    assert change.pending_since is not None
    assert change.announced_at is not None
    assert len(first_callbacks) == 1  # one refit message for the family, not one per law
    with django_capture_on_commit_callbacks() as second_callbacks:
        client_rw.post("/api/v1/runs/", {**RUN, "final_loss": 3.0}, format="json")
    again = FamilyChange.objects.get(pk=change.pk)
    assert again.announced_at == change.announced_at  # already announced: not sent again
    assert again.pending_since == change.pending_since
    assert again.changed_at > change.changed_at  # the debounce waits for the latest change
    assert second_callbacks == []


@pytest.mark.django_db
def test_simplest_mlflow_run_budget(django_assert_max_num_queries):
    from rest_framework.test import APIClient

    from runs.services import api_key_create, team_get_or_create

    team, _ = team_get_or_create(slug="mlq")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team)[1]}")

    def simplest(name: str) -> None:
        created = client.post(
            "/api/2.0/mlflow/runs/create", {"experiment_id": "0", "run_name": name, "start_time": 1}, format="json"
        )
        run_id = created.json()["run"]["info"]["run_id"]
        params = {"n_params": "10000000", "n_tokens": "200000000", "weight_bits": "8"}
        logged = client.post(
            "/api/2.0/mlflow/runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": k, "value": v} for k, v in params.items()],
                "metrics": [{"key": "final_loss", "value": 3.0, "timestamp": 1, "step": 0}],
            },
            format="json",
        )
        assert logged.status_code == 200, logged.content
        ended = client.post("/api/2.0/mlflow/runs/update", {"run_id": run_id, "status": "FINISHED"}, format="json")
        assert ended.status_code == 200, ended.content

    simplest("warm-up")
    with django_assert_max_num_queries(34):
        simplest("measured")
    assert Run.objects.filter(team=team, final_loss=3.0, status="finished").count() == 2


def test_bulk_post_costs_the_same_queries_for_2_or_20_runs(client_rw, team, django_assert_max_num_queries):
    def batch(prefix: str, count: int) -> dict[str, object]:
        return {"runs": [{**RUN, "external_id": f"{prefix}-{i}", "family": f"bulk-{i % 2}"} for i in range(count)]}

    client_rw.post("/api/v1/runs/bulk/", batch("warm-up", 2), format="json")
    # key lookup, savepoint, external_id lookup, runs insert, evaluations insert, family change upsert, release (20 runs
    # stay under SQLite's 999 parameters per statement, above which Django splits an INSERT)
    for prefix, count in (("small", 2), ("large", 20)):
        with django_assert_max_num_queries(7) as queries:
            response = client_rw.post("/api/v1/runs/bulk/", batch(prefix, count), format="json")
        assert response.status_code == 200, response.content
        assert response.json()["created"] == count
        inserts = [q["sql"].split("(")[0].strip() for q in queries.captured_queries if q["sql"].startswith("INSERT")]
        # one statement per table; the family's change is an upsert (an INSERT ... ON CONFLICT)
        assert inserts == ['INSERT INTO "runs_run"', 'INSERT INTO "runs_evaluation"', 'INSERT INTO "runs_familychange"']
    stored = Run.objects.filter(team=team, external_id="large-3").prefetch_related("evaluations").get()
    assert (stored.n_params, stored.family, stored.metadata) == (10**7, "bulk-1", {})
    evaluations = RUN["evaluations"]
    assert sorted((e.post_train_bits, e.method, e.loss) for e in stored.evaluations.all()) == sorted(
        (float(e["post_train_bits"]), e.get("method", "rtn"), e["loss"]) for e in evaluations
    )


def test_an_upsert_reads_stored_evaluations_only_when_it_needs_them(client_rw, team):
    # Only evaluations sent, or a weight_bits change (which must stay above them), need the stored ones.
    client_rw.post("/api/v1/runs/", RUN, format="json")

    def evaluation_reads(item: dict[str, object]) -> int:
        with CaptureQueriesContext(connection) as queries:
            runs_upsert(team=team, items=[{"external_id": "q-1", **item}])
        return sum(q["sql"].startswith("SELECT") and "runs_evaluation" in q["sql"] for q in queries.captured_queries)

    assert evaluation_reads({"final_loss": 2.8, "status": "finished"}) == 0
    assert evaluation_reads({"weight_bits": 16.0}) == 1


def test_a_single_post_that_loses_the_insert_race_updates_the_winners_run(team, monkeypatch):
    # Another request stores the same external_id between this one's locked read and its insert: the insert
    # (ON CONFLICT DO NOTHING) writes nothing, and the next attempt reads the winner's run and updates it.
    from apikit import rows

    winner = runs_upsert(team=team, items=[{**RUN, "external_id": "race", "evaluations": []}]).runs[0]
    real_get = rows.get
    calls = []

    def stale_first_read(model, **lookup):
        calls.append(lookup)
        return None if len(calls) == 1 else real_get(model, **lookup)

    monkeypatch.setattr(rows, "get", stale_first_read)
    result = runs_upsert(team=team, items=[{**RUN, "external_id": "race", "final_loss": 2.5, "evaluations": []}])
    assert len(calls) == 2
    assert (result.created, result.updated) == (0, 1)
    assert result.runs[0].pk == winner.pk
    assert Run.objects.filter(team=team, external_id="race").get().final_loss == 2.5


def test_a_refused_single_post_names_the_field_and_writes_nothing(team):
    from runs.services import BatchInvalid

    runs_upsert(team=team, items=[{**RUN, "external_id": "kept"}])
    before = FamilyChange.objects.get(team=team, family="queries").changed_at
    with pytest.raises(BatchInvalid) as refused:
        runs_upsert(team=team, items=[{"external_id": "kept", "weight_bits": 4, "family": "moved"}])
    assert "weight_bits" in refused.value.errors["0"]
    run = Run.objects.get(team=team, external_id="kept")
    assert (run.weight_bits, run.family) == (8, "queries")
    assert not FamilyChange.objects.filter(team=team, family="moved").exists()
    assert FamilyChange.objects.get(team=team, family="queries").changed_at == before


def test_a_single_post_moving_a_run_marks_both_families(team):
    runs_upsert(team=team, items=[{**RUN, "external_id": "mover"}])
    FamilyChange.objects.filter(team=team).delete()
    result = runs_upsert(team=team, items=[{"external_id": "mover", "family": "elsewhere"}])
    assert result.runs[0].family == "elsewhere"
    assert set(FamilyChange.objects.filter(team=team).values_list("family", flat=True)) == {"queries", "elsewhere"}


def _mlflow_client(slug: str):
    from rest_framework.test import APIClient

    from runs.services import api_key_create, team_get_or_create

    team, _ = team_get_or_create(slug=slug)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team)[1]}")
    return team, client


def _mlflow_run_with_params(client, name: str) -> str:
    created = client.post("/api/2.0/mlflow/runs/create", {"experiment_id": "0", "run_name": name}, format="json")
    run_id: str = created.json()["run"]["info"]["run_id"]
    params = {"n_params": "10000000", "n_tokens": "200000000", "weight_bits": "8"}
    body = {"run_id": run_id, "params": [{"key": k, "value": v} for k, v in params.items()]}
    assert client.post("/api/2.0/mlflow/runs/log-batch", body, format="json").status_code == 200
    return run_id


@pytest.mark.django_db
def test_an_mlflow_evaluation_at_weight_bits_is_left_out_in_one_write(django_assert_max_num_queries):
    # given a run at 8 weight bits that logs PTQ losses at 4 and at 8 bits (the second breaks post_train_bits < 8)
    team, client = _mlflow_client("mle")
    losses = [{"key": key, "value": 3.3, "timestamp": 1, "step": 0} for key in ("ptq_loss/4", "ptq_loss/8")]
    for name in ("warm-up", "measured"):
        run_id = _mlflow_run_with_params(client, name)
        # when the losses are logged
        # key, savepoint, locked MLflow run, savepoint, locked run, its evaluations, run update, evaluation insert,
        # family mark, release, points (SQLite; PostgreSQL's own cursor is not counted), MLflow run update, release
        with django_assert_max_num_queries(13) as queries:
            response = client.post(
                "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": losses}, format="json"
            )
        assert response.status_code == 200, response.content
    # then the run is written once, with the 4-bit evaluation, and the 8-bit one is named in bitscale.error
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any("ROLLBACK" in sql for sql in statements)
    assert sum('FROM "runs_run"' in sql for sql in statements) == 1  # the locked read, once
    run = Run.objects.get(team=team, name="measured")
    assert [e.post_train_bits for e in run.evaluations.all()] == [4]
    tags = client.get("/api/2.0/mlflow/runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]
    error = next(tag["value"] for tag in tags if tag["key"] == "bitscale.error")
    assert "evaluations" in error
    assert "post_train_bits" in error


@pytest.mark.django_db
def test_a_batch_of_loss_points_marks_the_family_without_reading_the_run(django_assert_max_num_queries):
    # given a linked MLflow run
    team, client = _mlflow_client("mlp")
    points = [{"key": "loss", "value": 3.0 - s / 100, "timestamp": 1, "step": s} for s in range(10)]
    for name in ("warm-up", "measured"):
        run_id = _mlflow_run_with_params(client, name)
        FamilyChange.objects.filter(team=team).update(pending_since=None, announced_at=None)  # a refit took it
        # when a batch of loss points is logged
        with django_assert_max_num_queries(9) as queries:
            response = client.post(
                "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": points}, format="json"
            )
        assert response.status_code == 200, response.content
    # then the family is marked pending again by one statement that reads the run's family itself
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any(sql.startswith('SELECT "runs_run"') for sql in statements)
    assert sum("runs_familychange" in sql for sql in statements) == 1
    family = Run.objects.get(team=team, name="measured").family
    assert FamilyChange.objects.get(team=team, family=family).pending_since is not None


def test_rows_select_reads_what_the_orm_reads(client_rw, team):
    from apikit import rows
    from runs.models import Evaluation

    client_rw.post("/api/v1/runs/", RUN, format="json")
    run = Run.objects.get(team=team, external_id="q-1")
    assert rows.select(Evaluation, run_id=run.pk) == list(Evaluation.objects.filter(run_id=run.pk))
    assert [(e.post_train_bits, e.method, e.loss) for e in rows.select(Evaluation, run_id=run.pk)] == [
        (e.post_train_bits, e.method, e.loss) for e in Evaluation.objects.filter(run_id=run.pk)
    ]
    assert rows.select(Evaluation, run_id=-1) == []
