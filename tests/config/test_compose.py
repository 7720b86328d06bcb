"""docker-compose.yml, read as `docker compose` would with the values of .env.example, checked against what each
service needs: its settings load, it waits for what it uses, it restarts, and the web server it describes
really starts and passes its own healthcheck here (gunicorn with the service's command and environment)."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.config.buildcontext import instructions
from tests.config.compose import InterpolationError, load, read_env_file

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRET = "k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx"
APP_SERVICES = {"migrate", "web", "worker", "beat", "remote-worker"}
LONG_RUNNING = {"db", "redis", "proxy", "web", "worker", "beat", "remote-worker"}


def example_env(**overrides: str) -> dict[str, str]:
    return {**read_env_file(ROOT / ".env.example"), **overrides}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE, example_env(DJANGO_SECRET_KEY=SECRET, METRICS_TOKEN="compose-metrics-token"))


def image_env() -> dict[str, str]:
    """ENV of the Dockerfile: what every container has before compose adds its own."""
    values: dict[str, str] = {}
    for keyword, args in instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                values[name] = value
    values["PYTHONPATH"] = str(ROOT)
    return values


def container_env(service: dict[str, Any], **overrides: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "VIRTUAL_ENV"}}
    return {**keep, **image_env(), **{k: str(v) for k, v in service["environment"].items()}, **overrides}


def test_compose_refuses_to_start_without_a_secret_key():
    assert not re.search(r"DJANGO_SECRET_KEY:?-", COMPOSE.read_text())  # no fallback value, public or not
    with pytest.raises(InterpolationError, match="DJANGO_SECRET_KEY"):
        load(COMPOSE, example_env())  # .env.example leaves it empty: a copied example cannot start
    with pytest.raises(InterpolationError, match="DJANGO_SECRET_KEY"):
        load(COMPOSE, {k: v for k, v in example_env().items() if k != "DJANGO_SECRET_KEY"})


def test_one_image_built_once_for_every_app_service(compose):
    services = compose["services"]
    assert set(services) == {"db", "redis", "proxy"} | APP_SERVICES
    assert {services[name]["image"] for name in APP_SERVICES} == {"bitscale:latest"}
    assert all(services[name]["build"] == "." for name in APP_SERVICES)
    assert services["db"]["image"].startswith("postgres:16")


def test_every_long_running_service_restarts_and_migrate_runs_once(compose):
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name]["restart"] in {"unless-stopped", "always"}, name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == "python manage.py migrate --noinput"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_web_worker_and_beat_wait_for_migrations_and_healthy_services(compose):
    for name in ("web", "worker", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    for name, service in compose["services"].items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in compose["services"][dependency], (name, dependency)


def test_the_site_is_nginx_in_front_of_gunicorn_which_is_not_published(compose):
    """Slow clients meet nginx, which buffers whole requests and responses (deploy/nginx.conf); gunicorn is reached
    only through it, on compose's network, and trusts the one address nginx adds to X-Forwarded-For."""
    services = compose["services"]
    proxy, web = services["proxy"], services["web"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["ports"] == ["8000:8080"]  # WEB_PORT of .env.example
    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert proxy["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert "8080/healthz" in " ".join(proxy["healthcheck"]["test"])
    assert "ports" not in web
    assert web["expose"] == ["8000"]
    assert web["command"] == "gunicorn -c config/gunicorn.py config.wsgi"  # the image's own command
    assert web["environment"]["DJANGO_TRUSTED_PROXY_COUNT"] == "1"
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server web:8000;" in conf
    assert "listen 8080;" in conf
    for directive in ("proxy_request_buffering on;", "proxy_buffering on;", "client_body_timeout 10s;"):
        assert directive in conf


def test_workers_scale_and_beat_stays_single(compose):
    services = compose["services"]
    for name in ("worker", "remote-worker"):
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], name
        assert "-Q celery,fits" in services[name]["command"]
        assert services[name]["healthcheck"]["test"][1].startswith("celery -A config inspect ping -d celery@$HOSTNAME")
    assert not any("container_name" in service for service in services.values())
    assert "celery -A config beat" in services["beat"]["command"]
    assert services["remote-worker"]["profiles"] == ["remote-worker"]  # not started by a plain `up`
    assert services["remote-worker"]["depends_on"] == {}  # its services are on the main host


def test_app_services_share_redis_as_broker_and_cache(compose):
    for name in APP_SERVICES - {"remote-worker"}:
        environment = compose["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://bitscale:bitscale@db:5432/")
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert environment["CACHE_URL"] == "redis://redis:6379/1"


SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings
from config.celery import app
print(json.dumps({"cache": settings.CACHES["default"], "broker": settings.CELERY_BROKER_URL,
                  "hosts": settings.ALLOWED_HOSTS, "https": settings.SESSION_COOKIE_SECURE,
                  "log": settings.LOG_FORMAT, "celery": app.main}))
"""


def _settings_of(service: dict[str, Any], **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        cwd=ROOT,
        env=container_env(service, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["migrate", "worker", "beat"])
def test_each_app_service_loads_production_settings_with_its_environment(compose, name):
    done = _settings_of(compose["services"][name])
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["cache"] == {
        "BACKEND": "config.cache.FailSoftRedisCache",  # falls back to local memory while Redis is down
        "LOCATION": "redis://redis:6379/1",
    }
    assert loaded["broker"] == "redis://redis:6379/0"
    assert "localhost" in loaded["hosts"]  # http://localhost:8000, the published port
    assert loaded["https"] is False  # compose serves plain HTTP: cookies without Secure
    assert loaded["log"] == "json"


def test_a_remote_worker_needs_the_main_hosts_addresses(compose):
    service = compose["services"]["remote-worker"]
    refused = _settings_of(service)
    assert refused.returncode != 0
    assert "DATABASE_URL must be set" in refused.stderr
    remote = load(
        COMPOSE,
        example_env(
            DJANGO_SECRET_KEY=SECRET,
            REMOTE_DATABASE_URL="postgres://bitscale:pw@10.0.0.5:5432/bitscale",
            REMOTE_CELERY_BROKER_URL="redis://10.0.0.5:6379/0",
        ),
    )["services"]["remote-worker"]
    done = _settings_of(remote)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["broker"] == "redis://10.0.0.5:6379/0"


def _seconds(duration: str) -> float:
    """A compose duration such as 10s or 1m30s."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[unit] for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.slow
def test_the_web_service_starts_passes_its_healthcheck_and_serves_metrics_of_all_its_processes(compose, tmp_path):
    """The web service's own command and environment, with two changes that only this machine needs: SQLite
    instead of the `db` host (migrated by the migrate service's command) and a free port instead of 8000 (in
    the healthcheck command too). Redis is not reachable by its service name here, which /healthz reports
    without failing."""
    services = compose["services"]
    port = _free_port()
    local = {"DATABASE_URL": f"sqlite:///{tmp_path / 'compose.db'}", "PORT": str(port), "WEB_CONCURRENCY": "2"}
    program, *arguments = shlex.split(services["migrate"]["command"])
    assert program == "python"
    migrate = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=container_env(services["migrate"], **local),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrate.returncode == 0, migrate.stderr

    command = [sys.executable, "-m", *shlex.split(services["web"]["command"])]
    log = tmp_path / "web.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=container_env(services["web"], **local), stderr=output)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.3)

            healthcheck = services["web"]["healthcheck"]["test"]
            assert healthcheck[0] == "CMD"
            probe = [sys.executable, *[part.replace(":8000/", f":{port}/") for part in healthcheck[2:]]]
            assert any(f":{port}/healthz" in part for part in probe)  # the port was the only change
            # As compose does: failures within start_period do not count, then `retries` tries.
            check = services["web"]["healthcheck"]
            deadline = (
                time.monotonic() + _seconds(check["start_period"]) + check["retries"] * _seconds(check["interval"])
            )
            while True:
                checked = subprocess.run(probe, capture_output=True, text=True, timeout=60)
                if checked.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert checked.returncode == 0, checked.stderr + log.read_text()[-3000:]

            # A browser on the published port: allowed host, plain HTTP, no redirect.
            status, headers, _ = _get(f"http://127.0.0.1:{port}/admin/login/", Host=f"localhost:{port}")
            assert status == 200
            assert "Secure" not in headers.get("Set-Cookie", "")
            for n in range(12):
                status, headers, _ = _get(
                    f"http://127.0.0.1:{port}/no/such/{n}", Host="localhost", **{"X-Request-ID": f"probe-{n}"}
                )
                assert (status, headers["X-Request-ID"]) == (404, f"probe-{n}")

            token = services["web"]["environment"]["METRICS_TOKEN"]
            assert _get(f"http://127.0.0.1:{port}/metrics", Host="web:8000")[0] == 403
            totals = []
            for _ in range(4):  # successive scrapes land on either gunicorn worker: each sees all requests
                status, _, body = _get(
                    f"http://127.0.0.1:{port}/metrics", Host="web:8000", Authorization=f"Bearer {token}"
                )
                assert status == 200
                samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(body.decode())
                    for s in family.samples
                }
                totals.append(
                    samples[
                        ("bitscale_http_requests_total", (("method", "GET"), ("status", "404"), ("view", "unmatched")))
                    ]
                )
            assert totals == [12.0] * 4
        finally:
            server.terminate()
            server.wait(timeout=30)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    logged = {entry["request_id"] for entry in lines if entry.get("logger") == "bitscale.request"}
    assert {f"probe-{n}" for n in range(12)} <= logged  # LOG_FORMAT=json: every request, with its id
