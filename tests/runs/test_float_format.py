"""A run's floating-point format (exponent_bits, mantissa_bits): API, CSV round trip and database constraints."""

import csv
import io

import pytest
from bitscale_client.csvformat import EXPORT_COLUMNS as CLIENT_EXPORT_COLUMNS
from bitscale_client.csvformat import read_runs
from django.core.management import call_command
from django.db import IntegrityError, transaction

from runs.models import Run
from runs.selectors import EXPORT_COLUMNS
from tests.factories import RunFactory, TeamFactory, payload

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/runs/"


def _format(body):
    return body["number_format"], body["exponent_bits"], body["mantissa_bits"]


def _export(client, query=""):
    response = client.get(f"{RUNS}export.csv{query}")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_an_e4m3_run_round_trips_through_post_get_and_patch(client_rw):
    body = payload(external_id="fp8", weight_bits=8, activation_bits=8, exponent_bits=4, mantissa_bits=3)

    created = client_rw.post(RUNS, body, format="json")

    assert created.status_code == 201, created.json()
    assert _format(created.json()) == ("fp", 4, 3)  # no number_format sent: a float format means fp
    run_id = created.json()["id"]
    assert _format(client_rw.get(f"{RUNS}{run_id}/").json()) == ("fp", 4, 3)
    assert _format(client_rw.get(RUNS, {"external_id": "fp8"}).json()["results"][0]) == ("fp", 4, 3)

    patched = client_rw.patch(f"{RUNS}{run_id}/", {"exponent_bits": 5, "mantissa_bits": 2}, format="json")

    assert patched.status_code == 200, patched.json()
    assert _format(patched.json()) == ("fp", 5, 2)
    assert Run.objects.values_list("exponent_bits", "mantissa_bits").get(pk=run_id) == (5, 2)


def test_runs_without_a_format_show_nulls_and_keep_the_bits_default(client_rw):
    created = client_rw.post(RUNS, payload(weight_bits=8), format="json").json()
    assert _format(created) == ("int", None, None)


def test_reposting_the_external_id_updates_the_format_and_omitting_it_keeps_it(client_rw):
    body = payload(external_id="again", weight_bits=8, number_format="fp", exponent_bits=4, mantissa_bits=3)
    assert client_rw.post(RUNS, body, format="json").status_code == 201

    updated = client_rw.post(RUNS, {**body, "exponent_bits": 2, "mantissa_bits": 1}, format="json")
    assert updated.status_code == 200, updated.json()
    assert _format(updated.json()) == ("fp", 2, 1)

    kept = client_rw.post(RUNS, payload(external_id="again", final_loss=3.0), format="json")
    assert kept.status_code == 200, kept.json()
    assert _format(kept.json()) == ("fp", 2, 1)
    assert Run.objects.get(external_id="again").mantissa_bits == 1

    bulk = client_rw.post(
        f"{RUNS}bulk/", {"runs": [{**body, "exponent_bits": 5, "mantissa_bits": 2}]}, format="json"
    ).json()
    assert bulk["updated"] == 1
    assert Run.objects.values_list("exponent_bits", "mantissa_bits").get(external_id="again") == (5, 2)


def test_patching_an_fp_run_to_int_is_400_and_changes_nothing(client_rw):
    body = payload(weight_bits=8, number_format="fp", exponent_bits=4, mantissa_bits=3)
    run_id = client_rw.post(RUNS, body, format="json").json()["id"]
    before = list(Run.objects.filter(pk=run_id).values())

    response = client_rw.patch(f"{RUNS}{run_id}/", {"number_format": "int"}, format="json")

    assert response.status_code == 400, response.content
    assert "exponent_bits" in response.json()["errors"]
    assert list(Run.objects.filter(pk=run_id).values()) == before


def test_patching_to_int_with_both_cleared_is_allowed(client_rw):
    body = payload(weight_bits=8, number_format="fp", exponent_bits=4, mantissa_bits=3)
    run_id = client_rw.post(RUNS, body, format="json").json()["id"]

    response = client_rw.patch(
        f"{RUNS}{run_id}/", {"number_format": "int", "exponent_bits": None, "mantissa_bits": None}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert _format(response.json()) == ("int", None, None)


def test_patching_one_of_the_two_to_null_names_it(client_rw):
    body = payload(number_format="fp", exponent_bits=8, mantissa_bits=7)
    run_id = client_rw.post(RUNS, body, format="json").json()["id"]

    response = client_rw.patch(f"{RUNS}{run_id}/", {"mantissa_bits": None}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"mantissa_bits": ["Give exponent_bits and mantissa_bits together."]}
    assert Run.objects.values_list("exponent_bits", "mantissa_bits").get(pk=run_id) == (8, 7)


def test_csv_export_and_import_round_trip_the_format(client_rw, tmp_path):
    runs = [
        payload(external_id="e4m3", weight_bits=8, activation_bits=8, exponent_bits=4, mantissa_bits=3),
        payload(external_id="bf16", exponent_bits=8, mantissa_bits=7, evaluations=[{"post_train_bits": 4, "loss": 4}]),
        payload(external_id="int8", weight_bits=8),
    ]
    assert client_rw.post(f"{RUNS}bulk/", {"runs": runs}, format="json").status_code == 200
    text = _export(client_rw)
    rows = {row["external_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert (rows["e4m3"]["exponent_bits"], rows["e4m3"]["mantissa_bits"]) == ("4", "3")
    assert (rows["int8"]["exponent_bits"], rows["int8"]["mantissa_bits"]) == ("", "")
    path = tmp_path / "runs.csv"
    path.write_text(text)
    TeamFactory(slug="copy")

    call_command("import_runs", str(path), team="copy", stdout=io.StringIO(), stderr=io.StringIO())

    def formats(slug):
        return sorted(
            Run.objects.filter(team__slug=slug).values_list(
                "external_id", "number_format", "exponent_bits", "mantissa_bits"
            )
        )

    assert (
        formats("copy") == formats("alpha") == [("bf16", "fp", 8, 7), ("e4m3", "fp", 4, 3), ("int8", "int", None, None)]
    )


def test_the_client_reads_the_format_columns_as_integers(client_rw):
    runs = [payload(external_id="e5m2", weight_bits=8, exponent_bits=5, mantissa_bits=2), payload(external_id="x")]
    assert client_rw.post(f"{RUNS}bulk/", {"runs": runs}, format="json").status_code == 200

    read = {run["external_id"]: run for run in read_runs(io.StringIO(_export(client_rw)))}

    assert (read["e5m2"]["exponent_bits"], read["e5m2"]["mantissa_bits"]) == (5, 2)
    assert "exponent_bits" not in read["x"]


def test_the_client_csv_columns_are_the_exports():
    assert list(CLIENT_EXPORT_COLUMNS) == EXPORT_COLUMNS


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"exponent_bits": 4}, id="exponent_bits alone"),
        pytest.param({"mantissa_bits": 3}, id="mantissa_bits alone"),
        pytest.param({"number_format": "int", "exponent_bits": 4, "mantissa_bits": 3}, id="int run"),
        pytest.param({"exponent_bits": 0, "mantissa_bits": 3}, id="exponent_bits 0"),
        pytest.param({"exponent_bits": 9, "mantissa_bits": 3}, id="exponent_bits 9"),
        pytest.param({"exponent_bits": 4, "mantissa_bits": 24}, id="mantissa_bits 24"),
    ],
)
def test_the_database_refuses_an_inconsistent_format(team, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        RunFactory.create(team=team, number_format=fields.pop("number_format", "fp"), **fields)


def test_the_database_accepts_a_complete_fp_format(team):
    run = RunFactory.create(team=team, number_format="fp", exponent_bits=2, mantissa_bits=1)
    assert Run.objects.values_list("exponent_bits", "mantissa_bits").get(pk=run.pk) == (2, 1)


def test_runs_filter_by_format(client_rw):
    for i, (e, m) in enumerate([(4, 3), (5, 2), (2, 1)]):
        body = payload(external_id=f"fmt-{i}", weight_bits=e + m + 1, exponent_bits=e, mantissa_bits=m)
        assert client_rw.post(RUNS, {**body, "number_format": "fp"}, format="json").status_code == 201
    assert client_rw.post(RUNS, payload(external_id="plain"), format="json").status_code == 201

    def ids(query):
        response = client_rw.get(RUNS, query)
        assert response.status_code == 200, response.json()
        return sorted(r["external_id"] for r in response.json()["results"])

    assert ids({"exponent_bits": 4}) == ["fmt-0"]
    assert ids({"mantissa_bits": 1}) == ["fmt-2"]
    assert ids({"has_fp_format": "true"}) == ["fmt-0", "fmt-1", "fmt-2"]
    assert ids({"has_fp_format": "false"}) == ["plain"]
    assert "fmt-1" in _export(client_rw, "?exponent_bits=5")
    assert "fmt-0" not in _export(client_rw, "?exponent_bits=5")
