"""A run's trained_at (when training finished): API input and defaults, filters, ordering, CSV and migration."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from bitscale_client.csvformat import read_runs
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from runs.models import TRAINED_AT_MAX_SKEW_SECONDS, Run
from runs.selectors import EXPORT_COLUMNS
from tests.factories import TeamFactory, payload

RUNS = "/api/v1/runs/"


def _when(text: str) -> datetime:
    value = parse_datetime(text)
    assert value is not None, text
    return value


def _export(client, query=""):
    response = client.get(f"{RUNS}export.csv{query}")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


@pytest.mark.django_db
def test_trained_at_defaults_to_the_time_of_registration(client_rw):
    before = timezone.now()
    body = client_rw.post(RUNS, payload(), format="json").json()
    after = timezone.now()

    trained = _when(body["trained_at"])
    assert before - timedelta(seconds=1) <= trained <= after + timedelta(seconds=1)
    assert abs(trained - _when(body["created_at"])) < timedelta(seconds=1)
    assert body["trained_at"].endswith("Z")


@pytest.mark.django_db
def test_a_given_trained_at_is_stored_in_utc_and_a_repost_without_it_keeps_it(client_rw):
    created = client_rw.post(
        RUNS, payload(external_id="r1", trained_at="2025-03-04T05:06:07+02:00"), format="json"
    ).json()
    assert created["trained_at"] == "2025-03-04T03:06:07Z"
    assert client_rw.get(f"{RUNS}{created['id']}/").json()["trained_at"] == "2025-03-04T03:06:07Z"

    reposted = client_rw.post(RUNS, payload(external_id="r1", final_loss=3.0), format="json")
    assert reposted.status_code == 200
    assert reposted.json()["trained_at"] == "2025-03-04T03:06:07Z"

    patched = client_rw.patch(f"{RUNS}{created['id']}/", {"trained_at": "2025-06-01T00:00:00Z"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["trained_at"] == "2025-06-01T00:00:00Z"
    assert Run.objects.get(pk=created["id"]).trained_at == datetime(2025, 6, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_a_trained_at_within_the_clock_skew_allowance_is_taken(client_rw):
    soon = timezone.now() + timedelta(seconds=TRAINED_AT_MAX_SKEW_SECONDS // 2)
    response = client_rw.post(RUNS, payload(trained_at=soon.isoformat()), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("future", "Must not be in the future", id="an hour ahead"),
        pytest.param("1999-12-31T23:59:59Z", "Must be on or after 2000-01-01T00:00:00Z", id="before 2000"),
        pytest.param("last tuesday", "Datetime has wrong format", id="not a date"),
        pytest.param(1_700_000_000, "Datetime has wrong format", id="a number"),
        pytest.param(None, "may not be null", id="null"),
    ],
)
def test_a_bad_trained_at_is_a_400_naming_it_and_nothing_is_written(client_rw, value, message):
    if value == "future":
        value = (timezone.now() + timedelta(hours=1)).isoformat()
    response = client_rw.post(RUNS, payload(trained_at=value), format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["trained_at"]
    assert message in response.json()["errors"]["trained_at"][0]

    bulk = client_rw.post(f"{RUNS}bulk/", {"runs": [payload(), payload(trained_at=value)]}, format="json")
    assert bulk.status_code == 400
    assert list(bulk.json()["errors"]["1"]) == ["trained_at"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_patching_trained_at_into_the_future_is_refused_and_changes_nothing(client_rw):
    created = client_rw.post(RUNS, payload(trained_at="2025-01-01T00:00:00Z"), format="json").json()
    ahead = (timezone.now() + timedelta(days=2)).isoformat()
    response = client_rw.patch(f"{RUNS}{created['id']}/", {"trained_at": ahead}, format="json")
    assert response.status_code == 400
    assert "trained_at" in response.json()["errors"]
    assert Run.objects.get(pk=created["id"]).trained_at == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_runs_filter_and_order_by_trained_at(client_rw):
    dates = {"b": "2025-02-01T00:00:00Z", "a": "2025-01-01T00:00:00Z", "d": "2025-04-01T00:00:00Z"}
    for name, when in dates.items():
        assert client_rw.post(RUNS, payload(external_id=name, trained_at=when), format="json").status_code == 201
    client_rw.post(RUNS, payload(external_id="now"), format="json")  # trained (registered) today

    def ids(query):
        return [r["external_id"] for r in client_rw.get(f"{RUNS}?{query}").json()["results"]]

    assert ids("ordering=trained_at") == ["a", "b", "d", "now"]
    assert ids("ordering=-trained_at") == ["now", "d", "b", "a"]
    assert ids("ordering=trained_at&trained_after=2025-01-15T00:00:00Z&trained_before=2025-04-01T00:00:00Z") == ["b"]
    # Pages of one run each follow the order across the cursor.
    page = client_rw.get(f"{RUNS}?ordering=trained_at&page_size=1").json()
    second = client_rw.get(page["next"]).json()
    assert [page["results"][0]["external_id"], second["results"][0]["external_id"]] == ["a", "b"]
    bad = client_rw.get(f"{RUNS}?trained_after=soon")
    assert bad.status_code == 400
    assert "trained_after" in bad.json()["errors"]


@pytest.mark.django_db
def test_csv_export_carries_trained_at_and_import_round_trips_it(client_rw, tmp_path):
    runs = [
        payload(
            external_id="old", trained_at="2024-05-06T07:08:09.123456Z", evaluations=[{"post_train_bits": 4, "loss": 4}]
        ),
        payload(external_id="new", trained_at="2025-01-02T03:04:05Z"),
    ]
    assert client_rw.post(f"{RUNS}bulk/", {"runs": runs}, format="json").status_code == 200

    text = _export(client_rw, "?trained_before=2025-01-01T00:00:00Z")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == EXPORT_COLUMNS
    assert header[header.index("exclusion_reason") + 1 : header.index("updated_at")] == ["trained_at", "created_at"]
    assert [row[header.index("trained_at")] for row in rows] == ["2024-05-06T07:08:09.123456Z"]

    path = tmp_path / "runs.csv"
    path.write_text(_export(client_rw))
    TeamFactory(slug="copy")
    call_command("import_runs", str(path), team="copy", stdout=io.StringIO(), stderr=io.StringIO())

    def dates(slug):
        return sorted(Run.objects.filter(team__slug=slug).values_list("external_id", "trained_at"))

    assert (
        dates("copy")
        == dates("alpha")
        == [
            ("new", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
            ("old", datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
        ]
    )
    read = {run["external_id"]: run for run in read_runs(io.StringIO(_export(client_rw)))}
    assert read["old"]["trained_at"] == "2024-05-06T07:08:09.123456Z"


@pytest.mark.django_db
def test_a_csv_without_trained_at_still_imports_with_the_default(tmp_path):
    TeamFactory(slug="copy")
    path = tmp_path / "old-format.csv"
    path.write_text("external_id,n_params,n_tokens,final_loss\nx,1000000,20000000,3.5\n")
    before = timezone.now()
    call_command("import_runs", str(path), team="copy", stdout=io.StringIO(), stderr=io.StringIO())
    assert Run.objects.get(external_id="x").trained_at >= before - timedelta(seconds=1)


@pytest.mark.django_db(transaction=True)
def test_the_migration_dates_existing_runs_at_their_registration():
    executor = MigrationExecutor(connection)
    executor.migrate([("runs", "0002_run_float_format")])
    old_apps = executor.loader.project_state([("runs", "0002_run_float_format")]).apps
    team = old_apps.get_model("runs", "Team").objects.create(slug="legacy")
    run = old_apps.get_model("runs", "Run").objects.create(team=team, n_params=10**6, n_tokens=10**7, final_loss=3.0)
    registered = datetime(2024, 7, 1, 12, tzinfo=UTC)
    old_apps.get_model("runs", "Run").objects.filter(pk=run.pk).update(created_at=registered)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert Run.objects.get(pk=run.pk).trained_at == registered
