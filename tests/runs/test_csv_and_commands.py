"""CSV export (streamed, formula-safe), import_runs round trip, and the team/key commands."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from runs.models import ApiKey, Evaluation, Run, Team
from runs.selectors import EXPORT_COLUMNS
from runs.services import api_key_digest
from tests.factories import TeamFactory, payload

pytestmark = pytest.mark.django_db


def _export(client, query=""):
    response = client.get(f"/api/v1/runs/export.csv{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def _post_sample(client):
    runs = [
        payload(
            external_id="a",
            name='=HYPERLINK("http://x")',
            weight_bits=8,
            activation_bits=8,
            metadata={"lr": 3e-4, "note": "-dangerous"},
            evaluations=[{"post_train_bits": 4, "loss": 3.5}, {"post_train_bits": 6, "method": "gptq", "loss": 3.3}],
        ),
        payload(external_id="b", family="other", final_loss=2.875, n_tokens=10**16 - 3, dataset="'quoted"),
        payload(
            external_id=None, excluded=True, exclusion_reason="+diverged at step 10", status="diverged", final_loss=None
        ),
    ]
    response = client.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")
    assert response.status_code == 200, response.json()


def test_export_has_one_row_per_run_and_evaluation(client_rw):
    _post_sample(client_rw)

    rows = list(csv.DictReader(io.StringIO(_export(client_rw))))

    assert list(rows[0]) == EXPORT_COLUMNS
    assert sorted((r["external_id"], r["post_train_bits"], r["method"]) for r in rows) == [
        ("", "", ""),
        ("a", "4.0", "rtn"),
        ("a", "6.0", "gptq"),
        ("b", "", ""),
    ]


def test_export_honours_accept_text_csv(client_rw):
    _post_sample(client_rw)
    response = client_rw.get("/api/v1/runs/export.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")


def test_export_obeys_the_list_filters(client_rw):
    _post_sample(client_rw)
    rows = list(csv.DictReader(io.StringIO(_export(client_rw, "?family=other"))))
    assert [r["external_id"] for r in rows] == ["b"]


def test_export_neutralises_spreadsheet_formulas(client_rw):
    _post_sample(client_rw)
    cells = [cell for row in csv.reader(io.StringIO(_export(client_rw))) for cell in row]
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    assert '\'=HYPERLINK("http://x")' in cells
    assert "'+diverged at step 10" in cells


def test_export_import_round_trip(client_rw, tmp_path, team):
    _post_sample(client_rw)
    path = tmp_path / "runs.csv"
    path.write_text(_export(client_rw))
    TeamFactory(slug="copy")

    call_command("import_runs", str(path), team="copy", stdout=io.StringIO(), stderr=io.StringIO())

    fields = [
        c
        for c in EXPORT_COLUMNS
        if c not in {"id", "created_at", "updated_at", "post_train_bits", "method", "eval_loss"}
    ]

    def state(slug):
        runs = Run.objects.filter(team__slug=slug).order_by("external_id", "n_tokens")
        return [
            ({f: getattr(r, f) for f in fields}, sorted(r.evaluations.values_list("post_train_bits", "method", "loss")))
            for r in runs
        ]

    assert state("copy") == state("alpha")
    assert len(state("copy")) == 3


def test_import_is_idempotent_by_external_id(client_rw, tmp_path):
    _post_sample(client_rw)
    path = tmp_path / "runs.csv"
    path.write_text(_export(client_rw, "?external_id=a"))
    TeamFactory(slug="copy")
    for _ in range(2):
        call_command("import_runs", str(path), team="copy", stdout=io.StringIO(), stderr=io.StringIO())
    assert Run.objects.filter(team__slug="copy").count() == 1
    assert Evaluation.objects.filter(run__team__slug="copy").count() == 2


def test_import_with_a_bad_row_writes_nothing_and_names_the_line(tmp_path, team):
    path = tmp_path / "bad.csv"
    path.write_text(
        "external_id,family,n_params,n_tokens,final_loss\nok-1,f,1000000,20000000,3.1\nbad-1,f,0,20000000,3.1\n"
    )
    with pytest.raises(CommandError, match=r"line 3.*n_params"):
        call_command("import_runs", str(path), team="alpha", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Run.objects.exists()


def test_import_rejects_unknown_columns(tmp_path, team):
    path = tmp_path / "bad.csv"
    path.write_text("n_params,n_tokens,final_los\n1,2,3\n")
    with pytest.raises(CommandError, match="final_los"):
        call_command("import_runs", str(path), team="alpha", stdout=io.StringIO(), stderr=io.StringIO())


def test_import_into_a_missing_team_fails_clearly(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("n_params,n_tokens,final_loss\n1,2,3\n")
    with pytest.raises(CommandError, match="create_team"):
        call_command("import_runs", str(path), team="nobody")


def test_create_team_is_idempotent():
    out = io.StringIO()
    call_command("create_team", "acme", name="Acme Labs", stdout=out)
    call_command("create_team", "acme", name="Other", stdout=out)
    assert list(Team.objects.values_list("slug", "name")) == [("acme", "Acme Labs")]
    assert "already exists" in out.getvalue()


def test_create_team_rejects_a_bad_slug():
    with pytest.raises(CommandError, match="slug"):
        call_command("create_team", "not a slug", stdout=io.StringIO())


@pytest.mark.parametrize("read_only", [False, True])
def test_create_api_key_prints_the_key_alone_on_the_last_line(team, client_rw, read_only):
    out = io.StringIO()
    args = ["alpha", "--label", "cluster-a"] + (["--read-only"] if read_only else [])
    call_command("create_api_key", *args, stdout=out, stderr=io.StringIO())

    secret = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get(digest=api_key_digest(secret))
    assert (key.team, key.read_only, key.label) == (team, read_only, "cluster-a")


def test_create_api_key_for_a_missing_team_fails():
    with pytest.raises(CommandError, match="create_team"):
        call_command("create_api_key", "ghost", stdout=io.StringIO(), stderr=io.StringIO())
