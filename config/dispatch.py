"""Send a worker task by its name: how run writes and the refit pipeline start the next step without importing
workers (nothing imports workers).

Task names are the stable interface between the senders (runs.services, fits.pipeline) and workers/tasks.py
(queued messages and beat rows refer to them too). A broker that is down is logged, never raised: every step
leaves its state in the database first, and the beat sweep re-sends whatever was not delivered.

While the broker is down, a request must not wait for it: a publish makes one connection attempt (the broker's
transport options in settings), and after a failure this process does not try again for BROKER_RETRY_SECONDS,
counting each send meanwhile as failed at once. A worker that gets its broker back asks for a sweep of whatever
was announced since it lost it (config.celery.PromptConsumer), so refits resume within seconds.
"""

import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

REFIT_FAMILY = "workers.refit_family"
REFIT_SCOPE = "workers.refit_scope"
RUN_FIT = "workers.run_fit"
RUN_FIT_CHUNK = "workers.run_fit_chunk"
FINISH_FIT = "workers.finish_fit"
SWEEP_FITS = "workers.sweep_fits"
RENDER_FIT_PLOTS = "workers.render_fit_plots"
REFRESH_FORECAST = "workers.refresh_forecast"
REFIT_CURVES = "workers.refit_curves"


# Until when (time.monotonic()) this process takes the broker for down.
_broker_down_until = 0.0


def send(task_name: str, *, countdown: float | None = None, **kwargs: Any) -> bool:
    """Publish one message for `task_name` with keyword arguments `kwargs`; False (logged) when it was not."""
    global _broker_down_until
    now = time.monotonic()
    if now < _broker_down_until:
        logger.debug("not publishing %s(%s): the broker was unreachable moments ago", task_name, kwargs)
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
        return False
    except Exception as exc:  # anything else the broker client raises: the caller must still succeed
        logger.warning("could not publish %s(%s): %s; the sweep will re-send it", task_name, kwargs, exc)
        return False
    return True
