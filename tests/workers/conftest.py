"""Real Celery workers on real Redis and PostgreSQL, for the integration tests of the refit pipeline."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.workers.celery_helpers import Worker, configure_celery

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
