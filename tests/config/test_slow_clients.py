"""Slow and stalled clients against the production web server (config/gunicorn.py, config.gunicorn_worker): a
stalled upload ends in a 408 in the API's JSON shape after the idle read limit, costs one thread meanwhile (never
a process, never the master), /healthz keeps answering, and gunicorn's own refusals are JSON."""

import json
import time
from pathlib import Path

import pytest

from tests.config.gunicorn_server import Gunicorn, gunicorn, healthz, read_all, send_raw, wait

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker pids from /proc (Linux)"),
]

THREADS = 4
IDLE = 8  # seconds: long enough that a /healthz stuck behind a stalled upload would time out first
STALLED_BODY = (
    b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
)
MANY_HEADERS = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))  # gunicorn's limit is 100 fields
STALLED_HEADERS = b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with gunicorn(
        tmp_path_factory.mktemp("web"),
        WEB_CONCURRENCY="2",
        WEB_THREADS=str(THREADS),
        WEB_IDLE_READ_SECONDS=str(IDLE),
        WEB_REQUEST_READ_SECONDS="30",
    ) as web:
        yield web


def _json_refusal(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]}
    if headers.get(b"transfer-encoding") == b"chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    assert headers[b"content-type"].startswith(b"application/json"), response
    return status, json.loads(body)


def test_stalled_uploads_hold_threads_not_the_server_and_end_in_408(server: Gunicorn):
    workers = sorted(server.workers())
    for _ in range(3):
        assert healthz(server.port) == 200

    # 5 uploads that stop after the first byte of their body and 2 clients that stop inside their headers: 7 of
    # the 8 threads wait on clients; then 2 that connect and say nothing (they hold no thread).
    stalled = []
    for data in [STALLED_BODY] * 5 + [STALLED_HEADERS] * 2:
        stalled.append(send_raw(server.port, data))
        time.sleep(0.1)  # each is taken by a thread before the next arrives
    assert wait(lambda: sum(server.connections_per_worker().values()) == 7, 10), server.connections_per_worker()
    # A process whose threads all wait accepts nothing more: no process holds more stalls than it has threads,
    # and the one thread left free serves everyone else.
    held = server.connections_per_worker()
    assert max(held.values()) <= THREADS, held
    silent = [send_raw(server.port, b"") for _ in range(2)]
    # /healthz answers meanwhile, well within the stalls' idle limit.
    statuses = [healthz(server.port, timeout=IDLE / 2) for _ in range(6)]
    assert statuses == [200] * 6, server.tail()

    answers = [read_all(sock, timeout=IDLE * 3) for sock in stalled]
    for answer in answers:
        status, body = _json_refusal(answer)
        assert status == 408
        assert "sent nothing" in body["errors"]["detail"][0]
    assert [read_all(sock, timeout=IDLE * 3) for sock in silent] == [b"", b""]  # closed, unanswered

    assert server.process.poll() is None, server.tail()
    assert sorted(server.workers()) == workers, server.tail()  # no worker was killed or replaced
    assert healthz(server.port) == 200


@pytest.mark.parametrize(
    ("request_bytes", "status", "field"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "detail"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + MANY_HEADERS + b"\r\n", 431, "detail"),
        (b"\x00\x01 nonsense\r\n\r\n", 400, "detail"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: foo\r\n\r\n", 400, "detail"),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            400,
            "detail",
        ),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
            400,
            "detail",
        ),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            400,
            "transfer_encoding",
        ),
    ],
    ids=["long-line", "many-headers", "garbage", "unknown-coding", "chunk-size-zz", "chunk-no-crlf", "gzip"],
)
def test_malformed_requests_are_4xx_in_the_json_shape(server: Gunicorn, request_bytes, status, field):
    answer = read_all(send_raw(server.port, request_bytes), timeout=10)
    got, body = _json_refusal(answer)
    assert (got, list(body["errors"])) == (status, [field]), answer
    assert b"Connection: close" in answer or b"connection: close" in answer.lower()


def test_a_chunked_body_cut_short_is_400_and_the_server_stays_up(server: Gunicorn):
    sock = send_raw(
        server.port,
        b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n{}",
    )
    sock.shutdown(1)  # the client stops sending mid-chunk
    status, body = _json_refusal(read_all(sock, timeout=10))
    assert status == 400
    assert "ended" in body["errors"]["detail"][0]
    assert healthz(server.port) == 200
