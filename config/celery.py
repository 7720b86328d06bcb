"""The Celery application, configured from Django settings under the CELERY_ namespace."""

import os
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer

from config import dispatch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# One BLAS thread per process: workers run one fit task per process, and BLAS threads on top of that
# oversubscribe the cores (measured: 25 bootstrap draws 3.5 s with default threads, 1.8 s with one, on 2 cores).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# A worker that lost its broker tries again after 1, 2, 3, ... seconds, then every RECONNECT_MAX_SECONDS: kombu's
# own schedule grows to 30 s between tries, which would leave a worker idle for up to half a minute after Redis
# is back (docs/operations.md, "Failure behaviour").
RECONNECT_MAX_SECONDS = 5


# Clocks of different machines disagree a little: a sweep asked for after an outage also re-sends what was
# announced this long before the worker saw the broker go (a duplicate finds nothing to do).
CLOCK_MARGIN_SECONDS = 5


class PromptConsumer(Consumer):
    """Celery's consumer, reconnecting to a broker that went away at most RECONNECT_MAX_SECONDS apart; once back,
    it asks for a sweep of every refit announced since it lost the broker (none of them could be delivered),
    instead of leaving them until they count as lost."""

    broker_lost_at: float | None = None  # wall-clock time the connection was lost, compared with database times

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.broker_lost_at is None:
            self.broker_lost_at = time.time()
        super().on_connection_error_after_connected(exc)

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=RECONNECT_MAX_SECONDS
        )
        connected = super().ensure_connected(conn)
        if self.broker_lost_at is not None:
            since = datetime.fromtimestamp(self.broker_lost_at - CLOCK_MARGIN_SECONDS, tz=UTC)
            self.broker_lost_at = None
            dispatch.send(dispatch.SWEEP_FITS, undelivered_since=since.isoformat())
        return connected


app = Celery("bitscale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
