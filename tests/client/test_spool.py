"""The spool: runs saved when the server stays unreachable, and sync() uploading each exactly once."""

from __future__ import annotations

import json
import threading

import pytest
from bitscale_client import Client, ServerUnavailable, Spooled
from bitscale_client.spool import Spool

from tests.client.fake_api import RUN, URL, FakeApi, down, status


def test_unreachable_server_spools_the_run_with_its_external_id(api, client, spool_path):
    api.fail_next(*down(6))

    result = client.log_run(**RUN)

    assert isinstance(result, Spooled)
    assert result.path == spool_path
    [entry] = Spool(spool_path).entries()
    assert entry.payload["external_id"] == result.external_ids[0]
    assert entry.payload["n_params"] == RUN["n_params"]
    assert entry.url == URL


def test_spooling_can_be_turned_off(api, make_client, spool_path):
    client = make_client(spool=False)
    api.fail_next(*down(6))

    with pytest.raises(ServerUnavailable):
        client.log_run(**RUN)
    assert not spool_path.exists()


def test_log_runs_spools_the_batches_that_could_not_be_sent(api, client, spool_path):
    runs = [{**RUN, "external_id": f"r{i}"} for i in range(2500)]
    api.fail_next(None, *down(6))  # the first batch lands, then the server goes away

    result = client.log_runs(runs)

    assert result.created == 1000
    assert result.spooled is not None
    assert result.spooled.count == 1500
    assert [e.payload["external_id"] for e in Spool(spool_path).entries()] == [f"r{i}" for i in range(1000, 2500)]


def test_sync_uploads_spooled_runs_exactly_once(api, client, spool_path):
    api.fail_next(*down(6))
    spooled = client.log_run(**RUN)
    assert isinstance(spooled, Spooled)

    first = client.sync()
    second = client.sync()

    assert (first.uploaded, first.created, first.remaining) == (1, 1, 0)
    assert second.uploaded == 0
    assert api.creates == 1
    assert list(api.runs) == spooled.external_ids
    assert Spool(spool_path).entries() == []


def test_sync_that_fails_midway_keeps_only_the_unacknowledged_runs(api, make_client, spool_path):
    client = make_client(max_retries=1)
    Spool(spool_path).append([{**RUN, "external_id": f"r{i}"} for i in range(5)], url=URL)
    api.fail_next(None, *down(2))  # batch 1 (r0, r1) lands; batch 2 finds the server gone

    with pytest.raises(ServerUnavailable):
        client.sync(batch_size=2)

    assert [e.payload["external_id"] for e in Spool(spool_path).entries()] == ["r2", "r3", "r4"]
    result = client.sync(batch_size=2)
    assert (result.uploaded, result.remaining) == (3, 0)
    assert api.creates == 5
    assert sorted(api.runs) == [f"r{i}" for i in range(5)]


def test_a_crash_between_ack_and_removal_does_not_duplicate(api, client, spool_path, monkeypatch):
    Spool(spool_path).append([{**RUN, "external_id": "r0"}], url=URL)

    def crash(self, ids):
        raise KeyboardInterrupt("killed after the server acknowledged")

    with monkeypatch.context() as patch:
        patch.setattr(Spool, "remove", crash)
        with pytest.raises(KeyboardInterrupt):
            client.sync()
    result = client.sync()  # the run is still spooled: posted again, it updates the same run

    assert (result.created, result.updated) == (0, 1)
    assert api.creates == 1


def test_sync_sets_refused_runs_aside_and_uploads_the_rest(api, client, spool_path):
    bad = {k: v for k, v in RUN.items() if k != "n_params"}
    Spool(spool_path).append([{**RUN, "external_id": "good"}, {**bad, "external_id": "bad"}], url=URL)

    result = client.sync()

    assert (result.uploaded, result.rejected, result.remaining) == (1, 1, 0)
    assert result.errors == {"bad": {"n_params": ["This field is required."]}}
    rejected = [json.loads(line) for line in result.rejected_path.read_text().splitlines()]
    assert rejected[0]["payload"]["external_id"] == "bad"
    assert list(api.runs) == ["good"]


def test_sync_leaves_runs_spooled_for_another_server(api, client, spool_path):
    Spool(spool_path).append([{**RUN, "external_id": "elsewhere"}], url="http://other.test")

    result = client.sync()

    assert (result.uploaded, result.remaining) == (0, 1)


def test_concurrent_appends_never_interleave_lines(spool_path):
    spool = Spool(spool_path)

    def writer(n: int) -> None:
        for i in range(20):
            spool.append([{**RUN, "external_id": f"w{n}-{i}", "metadata": {"pad": "x" * 5000}}], url=URL)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    entries = spool.entries()
    assert len(entries) == 80
    assert len({e.payload["external_id"] for e in entries}) == 80


def test_a_torn_line_is_moved_aside_not_lost_nor_fatal(spool_path):
    spool = Spool(spool_path)
    spool.append([{**RUN, "external_id": "ok"}], url=URL)
    with open(spool_path, "a") as raw:
        raw.write('{"id": "half-written", "payl')

    entries = spool.entries()

    assert [e.payload["external_id"] for e in entries] == ["ok"]
    assert "half-written" in spool.rejected_path.read_text()
    assert "half-written" not in spool_path.read_text()


def test_default_spool_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BITSCALE_SPOOL", str(tmp_path / "s.jsonl"))
    client = Client(URL, "k", transport=FakeApi().transport())

    assert client.spool is not None
    assert client.spool.path == tmp_path / "s.jsonl"


def test_sync_retries_transient_errors_before_giving_up(api, client):
    Spool(client.spool.path).append([{**RUN, "external_id": "r"}], url=URL)
    api.fail_next(status(503), status(429, {"Retry-After": "1"}))

    assert client.sync().uploaded == 1
