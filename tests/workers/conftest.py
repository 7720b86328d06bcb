"""Real Celery workers on real Redis and PostgreSQL, for the integration tests of the refit pipeline."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.redis_server import RedisServer
from tests.workers.celery_helpers import Worker, configure_celery

ROOT = Path(__file__).resolve().parents[2]


def _required(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A database of the tests' own redis-server (tests/redis_server.py), emptied for each test so stray messages
    never leak between tests; never a Redis the tests did not start."""
    if connection.vendor != "postgresql":
        _required("needs PostgreSQL: export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale")
    import redis

    if redis_server.process is None:  # a fault test stopped it
        redis_server.start()
    url = redis_server.url(1)
    redis.Redis.from_url(url).flushdb()
    return url


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
