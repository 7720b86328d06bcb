"""Real Celery workers on real Redis and PostgreSQL, for the integration tests of the refit pipeline."""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.workers.celery_helpers import configure_celery

ROOT = Path(__file__).resolve().parents[2]
TEST_REDIS_DB = 14  # a database of its own, flushed per test, so stray messages never leak between tests


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
