"""The demo loader: both families, clearly labelled, idempotent, and a working key."""

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from runs.models import Evaluation, Run

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


def test_load_demo_is_idempotent():
    _load()
    before = (Run.objects.count(), Evaluation.objects.count())
    _load()
    assert (Run.objects.count(), Evaluation.objects.count()) == before
    assert "already loaded" in _load("--if-missing")
