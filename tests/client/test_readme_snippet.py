"""The README's client snippet does what the README says: run twice, it stores one run (the external_id names it);
and without an external_id each call stores a run of its own (only that call's retries are idempotent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bitscale_client import Client

from runs.models import Run, Team
from runs.services import api_key_create

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [snippet] = [block for block in blocks if "bs.log_run(" in block]
    return snippet


@pytest.fixture
def api_key() -> str:
    return api_key_create(team=Team.objects.create(slug="readme"), label="readme")[1]


def test_running_the_readme_snippet_twice_stores_one_run(live_server, api_key, monkeypatch, tmp_path):
    monkeypatch.setenv("BITSCALE_SPOOL", str(tmp_path / "spool.jsonl"))
    code = _snippet().replace("http://localhost:8000", live_server.url)
    assert "external_id=" in code

    for _ in range(2):
        exec(code, {"api_key": api_key})  # noqa: S102  the README's own text, run as a user would

    [run] = Run.objects.filter(team__slug="readme")
    assert run.family == "sweep1"
    assert run.evaluations.count() == 1


def test_without_an_external_id_each_call_stores_a_run(live_server, api_key, tmp_path):
    body = {"family": "sweep1", "n_params": 110e6, "n_tokens": 3e9, "final_loss": 3.12}
    with Client(live_server.url, api_key, spool_path=tmp_path / "spool.jsonl") as client:
        first, second = client.log_run(**body), client.log_run(**body)

    assert first.external_id != second.external_id
    assert Run.objects.filter(team__slug="readme").count() == 2
