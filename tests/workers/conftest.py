"""Real Celery workers on real Redis and PostgreSQL, for the integration tests of the refit pipeline."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
# A database of its own, flushed per test, so stray messages never leak between tests (BITSCALE_TEST_REDIS_DB
# gives each of several checkouts sharing one Redis its own).
TEST_REDIS_DB = int(os.environ.get("BITSCALE_TEST_REDIS_DB", "14"))


def _required(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        _required("needs Redis: export CELERY_BROKER_URL=redis://127.0.0.1:6379/0")
    if connection.vendor != "postgresql":
        _required("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")
    import redis

    test_url = f"{url.rsplit('/', 1)[0]}/{TEST_REDIS_DB}"
    redis.Redis.from_url(test_url).flushdb()
    return test_url


def _reset_producer_pool() -> None:
    # Drop (never close) the app's references: kombu keeps a pool per broker URL, so the new URL gets its own.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(redis_url: str, transactional_db: None, settings: Any) -> Iterator[str]:
    """This process publishes to the test Redis for real (eager mode off) for the duration of the test."""
    keys = ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS")
    saved = {key: getattr(settings, key) for key in keys}
    saved_env = os.environ.get("CELERY_BROKER_URL", "")
    configure_celery(settings, CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=redis_url)
    configure_celery(
        settings, CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 3600, "socket_connect_timeout": 2}
    )
    yield redis_url
    configure_celery(settings, **saved)
    os.environ["CELERY_BROKER_URL"] = saved_env


def configure_celery(settings: Any, **values: Any) -> None:
    """Change Celery settings mid-test: in Django's settings and in the app's already-loaded configuration
    (whose keys keep the CELERY_ namespace), dropping pooled connections to an old broker. Celery prefers
    the CELERY_BROKER_URL environment variable to any configuration, so that is set too (and restored by
    the broker fixture)."""
    for key, value in values.items():
        setattr(settings, key, value)
    if "CELERY_BROKER_URL" in values:
        os.environ["CELERY_BROKER_URL"] = values["CELERY_BROKER_URL"]
    celery_app.conf.update(values)
    _reset_producer_pool()


def set_broker_url(settings: Any, url: str) -> None:
    configure_celery(settings, CELERY_BROKER_URL=url)


class Worker:
    """A `celery worker` process on the test database and broker."""

    def __init__(self, broker_url: str, **settings: object) -> None:
        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            **{key: str(value) for key, value in settings.items()},
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "celery,fits",
            "--pool=solo",
            "-l",
            "info",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout=60):
            self.stop()
            raise RuntimeError("worker did not start:\n" + "".join(self.lines[-40:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if " ready." in line:
                self._ready.set()

    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, exactly what a crashed machine does."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(broker: str) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(**settings: object) -> Worker:
        worker = Worker(broker, **settings)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, log: Callable[[], str] = str) -> None:
    """Poll until predicate() is true; fail with `what` (and the worker log) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log()[-4000:]}")
