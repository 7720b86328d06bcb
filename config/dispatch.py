"""Send a worker task by its name: how run writes and the refit pipeline start the next step without importing
workers (nothing imports workers).

Task names are the stable interface between the senders (runs.services, fits.pipeline) and workers/tasks.py
(queued messages and beat rows refer to them too). A broker that is down is logged, never raised: every step
leaves its state in the database first, and the beat sweep re-sends whatever was not delivered.
"""

import logging
from typing import Any

from celery import current_app

logger = logging.getLogger(__name__)

REFIT_FAMILY = "workers.refit_family"
REFIT_SCOPE = "workers.refit_scope"
RUN_FIT = "workers.run_fit"
RUN_FIT_CHUNK = "workers.run_fit_chunk"
FINISH_FIT = "workers.finish_fit"
SWEEP_FITS = "workers.sweep_fits"
RENDER_FIT_PLOTS = "workers.render_fit_plots"


def send(task_name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    """Publish one message for `task_name` with keyword arguments `kwargs`; a broker error is logged."""
    try:
        # The registered task knows its queue and honours eager mode (tests). Celery registers the tasks of
        # INSTALLED_APPS when it imports its default modules, which a web process has not done yet.
        if task_name not in current_app.tasks:
            current_app.loader.import_default_modules()
        current_app.tasks[task_name].apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except Exception as exc:  # kombu raises many types for an unreachable broker; the caller must still succeed
        logger.warning("could not publish %s(%s): %s; the sweep will re-send it", task_name, kwargs, exc)
