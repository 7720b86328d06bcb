"""The demo loader: its families, clearly labelled, idempotent, and a working key."""

import io
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from fits.management.commands.demo_status import DemoProgress, demo_progress
from fits.management.commands.load_demo import OLMO_FAMILY, OLMO_RUNNING, read_credentials
from fits.models import Fit, FitChunk
from mlflow_compat.models import MlflowRun
from runs.models import Evaluation, FamilyChange, MetricPoint, Run, Team
from tests.factories import FitFactory

pytestmark = pytest.mark.django_db


def _load(*args):
    out = io.StringIO()
    call_command("load_demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_load_demo_creates_both_families_and_prints_a_working_key():
    out = _load()

    counts = {
        f: Run.objects.filter(team__slug="demo", family=f).count() for f in ["kumar-synthetic", "chinchilla-epoch"]
    }
    assert counts["chinchilla-epoch"] == 240
    assert counts["kumar-synthetic"] > 500
    assert Evaluation.objects.filter(run__family="kumar-synthetic").exists()
    assert all(r.metadata["synthetic"] for r in Run.objects.filter(family="kumar-synthetic")[:50])
    assert not Run.objects.filter(family="chinchilla-epoch", metadata__synthetic=True).exists()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.strip().splitlines()[-1]}")
    assert client.get("/api/v1/families/").json()[0]["family"] == "chinchilla-epoch"


def test_the_olmo_ladder_comes_with_its_curves_and_one_run_half_way_whose_forecast_covers_where_it_ended():
    out = _load()

    runs = Run.objects.filter(team__slug="demo", family=OLMO_FAMILY)
    assert runs.count() == 30
    running = runs.get(status=Run.Status.RUNNING)
    assert running.name == OLMO_RUNNING
    assert running.final_loss is None
    assert running.schedule["total_steps"] == 81352
    assert running.schedule["lr_schedule"] == "cosine"
    steps = MetricPoint.objects.filter(run=running, key="val_loss").values_list("step", flat=True)
    assert 0 < max(steps) <= 81352 / 2  # the second half is not in the demo: the forecast cannot have seen it
    finished = runs.exclude(pk=running.pk)
    assert all(r.status == Run.Status.FINISHED and r.final_loss is not None for r in finished)
    mlflow_run = MlflowRun.objects.get(bitscale_run=running)
    true_final = float(mlflow_run.tags["demo.true_final_loss"].split()[0])
    assert true_final == pytest.approx(2.878463, abs=1e-4)  # the shipped curve's last row

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.strip().splitlines()[-1]}")
    body = client.get(f"/api/v1/runs/{running.pk}/forecast/").json()
    forecast = body["forecast"]
    assert forecast is not None, body["reasons"]
    assert forecast["fraction_seen"] == pytest.approx(0.5, abs=0.01)
    assert forecast["interval"][0] <= true_final <= forecast["interval"][1]


def test_load_demo_is_idempotent():
    _load()
    before = (Run.objects.count(), Evaluation.objects.count())
    _load()
    assert (Run.objects.count(), Evaluation.objects.count()) == before
    assert "already loaded" in _load("--if-missing")


def test_the_key_and_login_are_saved_to_the_credentials_file_readable_by_the_owner_only(tmp_path):
    path = tmp_path / "var" / "demo.env"

    out = _load("--credentials-file", str(path))

    key = out.strip().splitlines()[-1]
    values = read_credentials(path)
    assert values["DEMO_KEY"] == values["BITSCALE_API_KEY"] == key
    assert values["DEMO_ADMIN_USER"] == "demo"
    assert get_user_model().objects.get(username="demo").check_password(values["DEMO_ADMIN_PASSWORD"])
    assert path.stat().st_mode & 0o077 == 0
    assert f"saved to {path}" in out
    shell = subprocess.run(["sh", "-c", f'. "{path}" && echo "$DEMO_KEY"'], capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == key


def test_a_second_load_keeps_the_saved_password_and_names_the_file(tmp_path):
    path = tmp_path / "demo.env"
    _load("--credentials-file", str(path))
    password = read_credentials(path)["DEMO_ADMIN_PASSWORD"]

    again = _load("--credentials-file", str(path))  # a refresh: a new key, the user's password unchanged
    skipped = _load("--if-missing", "--credentials-file", str(path))

    assert read_credentials(path)["DEMO_ADMIN_PASSWORD"] == password
    assert read_credentials(path)["DEMO_KEY"] == again.strip().splitlines()[-1]
    assert f"Its key and admin login are in {path}" in skipped


def test_the_box_names_the_admin_login_key_and_file(tmp_path):
    path = tmp_path / "demo.env"
    _load("--credentials-file", str(path))
    out = io.StringIO()

    call_command("demo_status", "--credentials-file", str(path), stdout=out)

    box = out.getvalue()
    values = read_credentials(path)
    assert box.strip().startswith("┌")
    assert box.strip().endswith("┘")
    assert f"password {values['DEMO_ADMIN_PASSWORD']}" in box
    assert values["DEMO_KEY"] in box
    assert f"`. {path}` sets DEMO_KEY" in box
    assert "Demo fits still running (0 laws fitted so far)" in box  # no worker in this test: nothing refitted yet
    assert len({len(line) for line in box.strip().splitlines()}) == 1  # a closed frame


def test_progress_counts_the_laws_with_a_succeeded_fit():
    _load()
    team = Team.objects.get(slug="demo")
    waiting = demo_progress()
    assert waiting == DemoProgress(laws=0, fitted=0, failed=0, busy=4, waiting=4)  # the refit decides the laws
    assert "4 families waiting for the refit" in waiting.line(1)

    FamilyChange.objects.filter(team=team).update(pending_since=None)  # refitted
    running = FitFactory.create(team=team, family="fp-synthetic", law="fp", status="running", n_bootstrap=200)
    FitChunk.objects.create(fit=running, index=0, draws=b"")
    progress = demo_progress()
    assert progress == DemoProgress(laws=1, fitted=0, failed=0, busy=1, chunks_done=1, chunks=8)
    assert progress.line(5) == "[bitscale] demo fits: 0 of 1 laws fitted; bootstrap 1 of 8 chunks of the rest (5 s)"
    Fit.objects.filter(team=team).delete()
    FitFactory.create(team=team, family="kumar-synthetic", law="precision")
    FitFactory.create(team=team, family="kumar-synthetic", law="chinchilla", failed=True)
    progress = demo_progress()

    assert progress == DemoProgress(laws=2, fitted=1, failed=1, busy=0)
    assert progress.done
    assert progress.line(42) == "[bitscale] demo fits: 1 of 2 laws fitted, 1 failed (42 s)"
