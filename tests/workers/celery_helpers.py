"""Helpers of the worker integration tests: Celery's configuration changed mid-test, and polling."""

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from config.celery import app as celery_app


def _reset_producer_pool() -> None:
    # Drop (never close) the app's references: kombu keeps a pool per broker URL, so the new URL gets its own.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


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


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, log: Callable[[], str] = str) -> None:
    """Poll until predicate() is true; fail with `what` (and the worker log) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log()[-4000:]}")
