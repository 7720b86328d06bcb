"""deploy/nginx.conf, compose's `proxy` service, run with Debian's nginx in front of the production web server:
stalled uploads never reach gunicorn (one process of one thread keeps serving), nginx's own refusals are in the
API's JSON shape, and a web service that does not answer is a 503 with Retry-After.

Needs the `nginx` binary (Debian: apt-get install nginx-light); skipped without it, in CI too (.ci/run installs it
where it can).
"""

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.config.gunicorn_server import free_port, gunicorn, healthz, read_all, send_raw, wait
from tests.config.test_slow_clients import STALLED_BODY, _json_refusal

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian: apt-get install nginx-light)"),
    pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads gunicorn's connections from /proc"),
]


def site_config(upstream_port: int, port: int) -> str:
    """The compose file's nginx configuration, with the two addresses this machine needs instead of compose's."""
    text = CONF.read_text()
    assert text.count("server web:8000;") == 1
    assert text.count("listen 8080;") == 1
    return text.replace("server web:8000;", f"server 127.0.0.1:{upstream_port};").replace(
        "listen 8080;", f"listen 127.0.0.1:{port};"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """gunicorn with one process of one thread (a single stalled request would hold all of it), behind nginx. The
    module's last test stops gunicorn."""
    tmp_path = tmp_path_factory.mktemp("proxy")
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="1", WEB_IDLE_READ_SECONDS="60") as web:
        folder = tmp_path / "nginx"
        folder.mkdir()
        folder.chmod(0o777)  # nginx's workers run unprivileged when the master is root
        port = free_port()
        (folder / "site.conf").write_text(site_config(web.port, port))
        temp_paths = "".join(
            f"  {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n  access_log {folder / 'access.log'};\n{temp_paths}  include {folder / 'site.conf'};\n}}\n"
        )
        process = subprocess.Popen(
            [NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait(lambda: healthz(port) == 200, 20), (folder / "error.log").read_text()
            yield web, port
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_stalled_uploads_wait_in_nginx_and_never_reach_gunicorn(stack):
    web, port = stack
    stalled = [send_raw(port, STALLED_BODY) for _ in range(8)]
    time.sleep(1)
    # nginx holds the stalls; gunicorn has no connection of theirs (those of earlier requests close at once).
    assert wait(lambda: sum(web.connections_per_worker().values()) == 0, 10), web.connections_per_worker()
    assert [healthz(port, timeout=5) for _ in range(5)] == [200] * 5  # gunicorn's single thread is free
    for sock in stalled:
        sock.close()
    assert web.process.poll() is None


@pytest.mark.parametrize(
    ("request_bytes", "status", "field"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "detail"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "detail"),
        (b"\x00\x01 nonsense\r\n\r\n", 400, "detail"),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 7000000\r\n\r\n{",
            413,
            "detail",
        ),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            400,
            "transfer_encoding",
        ),
        (
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            400,
            "detail",
        ),
        (  # passed on whole, with a length, to the web service, whose answer (no key: 401) comes back unchanged
            b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            401,
            "detail",
        ),
    ],
    ids=["long-request-line", "huge-header", "garbage", "body-over-limit", "gzip", "chunk-size-zz", "chunked-401"],
)
def test_refusals_through_nginx_are_json(stack, request_bytes, status, field):
    _, port = stack
    got, body = _json_refusal(read_all(send_raw(port, request_bytes), timeout=15))
    assert (got, list(body["errors"])) == (status, [field])


def test_a_web_service_that_does_not_answer_is_503_with_retry_after(stack):
    web, port = stack
    web.process.terminate()
    web.process.wait(timeout=30)
    answer = read_all(send_raw(port, b"GET /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), timeout=15)
    status, body = _json_refusal(answer)
    assert status == 503
    assert b"Retry-After: 5" in answer
    assert "retry" in body["errors"]["detail"][0]
