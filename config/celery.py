"""The Celery application, configured from Django settings under the CELERY_ namespace."""

import os
from functools import partial
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# One BLAS thread per process: workers run one fit task per process, and BLAS threads on top of that
# oversubscribe the cores (measured: 25 bootstrap draws 3.5 s with default threads, 1.8 s with one, on 2 cores).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# A worker that lost its broker tries again after 1, 2, 3, ... seconds, then every RECONNECT_MAX_SECONDS: kombu's
# own schedule grows to 30 s between tries, which would leave a worker idle for up to half a minute after Redis
# is back (docs/operations.md, "Failure behaviour").
RECONNECT_MAX_SECONDS = 5


class PromptConsumer(Consumer):
    """Celery's consumer, reconnecting to a broker that went away at most RECONNECT_MAX_SECONDS apart."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=RECONNECT_MAX_SECONDS
        )
        return super().ensure_connected(conn)


app = Celery("bitscale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
