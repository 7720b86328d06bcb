"""Fixtures of the client tests: no real sleeping, a fake API, and clients pointed at it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bitscale_client import Client, cli
from bitscale_client import transport as transport_module

from tests.client.fake_api import URL, FakeApi


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """Every backoff the client asked for, instead of sleeping."""
    waited: list[float] = []
    monkeypatch.setattr(transport_module, "_sleep", waited.append)
    return waited


@pytest.fixture(autouse=True)
def _no_user_spool(monkeypatch, tmp_path: Path) -> None:
    """Nothing in these tests may write to the real ~/.cache."""
    monkeypatch.setenv("BITSCALE_SPOOL", str(tmp_path / "default-spool.jsonl"))


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool.jsonl"


@pytest.fixture
def make_client(api: FakeApi, spool_path: Path) -> Callable[..., Client]:
    def make(**kwargs: Any) -> Client:
        options: dict[str, Any] = {"transport": api.transport(), "spool_path": spool_path, "seed": 7}
        options.update(kwargs)
        return Client(URL, "bsk_test", **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


@pytest.fixture
def run_cli(api: FakeApi, spool_path: Path, monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run `bitscale ARGS` against the fake API; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "Client", functools.partial(Client, transport=api.transport(), seed=1))
    monkeypatch.setenv("BITSCALE_URL", URL)
    monkeypatch.setenv("BITSCALE_API_KEY", "bsk_env")

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--spool", str(spool_path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
