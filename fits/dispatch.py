"""Send a worker task by its name: how the refit pipeline starts its next step without importing workers.

Task names are the stable interface between the pipeline and workers/tasks.py (queued messages and beat rows
refer to them too). A broker that is down is logged, never raised: every step leaves its state in the database
first, and the beat sweep re-sends whatever was not delivered.

While the broker is down, a request must not wait for it: a publish makes one connection attempt (the broker's
transport options in settings), and after a failure this process does not try again for BROKER_RETRY_SECONDS,
counting each send meanwhile as failed at once. A refit request that was not delivered clears its scope's
`enqueued_at`, so the next sweep re-sends it instead of waiting for the message to count as lost.
"""

import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import DatabaseError
from kombu.exceptions import OperationalError

from fits.models import FitScope

logger = logging.getLogger(__name__)

REFIT_SCOPE = "workers.refit_scope"
RUN_FIT = "workers.run_fit"
RUN_FIT_CHUNK = "workers.run_fit_chunk"
FINISH_FIT = "workers.finish_fit"
SWEEP_FITS = "workers.sweep_fits"

# Until when (time.monotonic()) this process takes the broker for down.
_broker_down_until = 0.0


def send(task_name: str, *, countdown: float | None = None, **kwargs: Any) -> bool:
    """Publish one message for `task_name` with keyword arguments `kwargs`; False (logged) when it was not."""
    global _broker_down_until
    now = time.monotonic()
    if now < _broker_down_until:
        logger.debug("not publishing %s(%s): the broker was unreachable moments ago", task_name, kwargs)
        _undelivered(task_name, kwargs)
        return False
    try:
        # The registered task knows its queue and honours eager mode (tests). Celery registers the tasks of
        # INSTALLED_APPS when it imports its default modules, which a web process has not done yet.
        if task_name not in current_app.tasks:
            current_app.loader.import_default_modules()
        current_app.tasks[task_name].apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except (OperationalError, OSError) as exc:  # kombu's error for an unreachable broker, or the socket's own
        _broker_down_until = now + settings.BROKER_RETRY_SECONDS
        logger.warning("could not publish %s(%s): %s; the sweep will re-send it", task_name, kwargs, exc)
        _undelivered(task_name, kwargs)
        return False
    except Exception as exc:  # anything else the broker client raises: the caller must still succeed
        logger.warning("could not publish %s(%s): %s; the sweep will re-send it", task_name, kwargs, exc)
        _undelivered(task_name, kwargs)
        return False
    return True


def _undelivered(task_name: str, kwargs: dict[str, Any]) -> None:
    if task_name != REFIT_SCOPE or "scope_id" not in kwargs:
        return
    # No message is on its way after all: the sweep takes the scope at its next run. Without the database too,
    # the sweep still finds the scope once the message counts as lost.
    try:
        FitScope.objects.filter(pk=kwargs["scope_id"], dirty_since__isnull=False).update(enqueued_at=None)
    except DatabaseError as exc:
        logger.warning("could not mark scope %s as waiting for the sweep: %s", kwargs["scope_id"], exc)
