"""Worker-side observations: a heartbeat row per worker, and the duration of every bootstrap chunk task.

Both are written to the database, which every worker on every machine reaches, so /metrics and /healthz on
any web process see all of them whatever the pool (prefork children included) and without a shared cache.
Nothing here imports models at module level: the heartbeat step is added by ops.apps while the app registry
loads.
"""

import logging
import time
from typing import Any

from celery import bootsteps
from celery.signals import task_postrun, task_prerun

from config.dispatch import RUN_FIT_CHUNK

logger = logging.getLogger(__name__)

CHUNK_TASK = RUN_FIT_CHUNK
CHUNK_DURATION = "bitscale_fit_chunk_duration_seconds"
CHUNK_DURATION_BOUNDS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

_started: dict[str, float] = {}  # task id -> monotonic start, per process (a task runs in one process)


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is not None and getattr(task, "name", None) == CHUNK_TASK:
        _started[task_id] = time.monotonic()


def _task_finished(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if started is None or state != "SUCCESS":
        return
    from ops.services import histogram_observe

    try:
        histogram_observe(name=CHUNK_DURATION, bounds=CHUNK_DURATION_BOUNDS, seconds=time.monotonic() - started)
    except Exception:  # a metric must never fail the task it measures
        logger.warning("could not record a chunk duration", exc_info=True)


def connect_task_timing() -> None:
    task_prerun.connect(_task_started, weak=False, dispatch_uid="ops.task_started")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="ops.task_finished")


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Consumer step: writes this worker's heartbeat now and every WORKER_HEARTBEAT_SECONDS.

    It runs on the consumer's timer, in the process that takes messages off the broker: a worker whose
    consumer is stuck stops beating, whatever its pool processes do.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.started_at: Any = None

    def start(self, parent: Any) -> None:
        from django.conf import settings
        from django.utils import timezone

        self.started_at = timezone.now()
        self.beat(parent)
        self.timer_ref = parent.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, self.beat, (parent,))

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def beat(self, parent: Any) -> None:
        from django.db import close_old_connections

        from ops.services import worker_heartbeat_record

        try:
            close_old_connections()  # drops a connection the database closed (restart) before using it
            queues = list(parent.app.amqp.queues.consume_from)
            worker_heartbeat_record(hostname=parent.hostname, queues=queues, started_at=self.started_at)
        except Exception:  # the database may be down: the worker goes on, the heartbeat catches up
            logger.warning("could not record the worker heartbeat", exc_info=True)
