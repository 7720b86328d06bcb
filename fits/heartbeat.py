"""A running fit's heartbeat, kept fresh while a worker computes, so a silent fit means a dead worker.

The sweep takes over a running fit whose `heartbeat_at` is older than FIT_STUCK_AFTER_SECONDS (a minute by
default). A point fit, a bootstrap chunk or the assembly can each compute for longer than that, so while one
runs a background thread refreshes the heartbeat every FIT_HEARTBEAT_SECONDS: a healthy worker, however long
its step, is never taken over, and a killed one falls silent at once. The rule: FIT_STUCK_AFTER_SECONDS is
several heartbeats (at least 3), so a slow database write or a busy CPU does not look like a death.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial

from django.conf import settings
from django.db import connection
from django.utils import timezone

from fits.models import Fit, FitChunk

logger = logging.getLogger(__name__)


def fit_heartbeat_touch(*, fit_id: int, attempt: int | None = None) -> bool:
    """Refresh the heartbeat of a running fit (of this attempt, when given); False when it is no longer ours."""
    fits = Fit.objects.filter(pk=fit_id, status=Fit.Status.RUNNING)
    if attempt is not None:
        fits = fits.filter(attempt=attempt)
    return bool(fits.update(heartbeat_at=timezone.now()))


def _beat(touch: Callable[[], bool], label: str, every: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(every):
            try:
                if not touch():
                    return  # finished, failed or taken over: nothing left to keep alive
            except Exception as exc:  # a missed beat is retried at the next tick; the step itself goes on
                logger.warning("heartbeat of %s failed: %s", label, exc)
    finally:
        connection.close()  # this thread's own connection


@contextmanager
def heartbeat(touch: Callable[[], bool], *, label: str, every: float | None = None) -> Iterator[None]:
    """Call `touch` every FIT_HEARTBEAT_SECONDS (0 turns it off) in a background thread while the body runs, until
    it returns False (the record is no longer ours to keep alive). `label` names the record in logs and the
    thread's name."""
    every = float(settings.FIT_HEARTBEAT_SECONDS if every is None else every)
    if every <= 0:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_beat, args=(touch, label, every, stop), name=f"{label}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def fit_heartbeat(
    *, fit_id: int, attempt: int | None = None, every: float | None = None
) -> AbstractContextManager[None]:
    """Keep the fit's heartbeat fresh while the body runs (every FIT_HEARTBEAT_SECONDS; 0 turns it off)."""
    return heartbeat(partial(fit_heartbeat_touch, fit_id=fit_id, attempt=attempt), label=f"fit-{fit_id}", every=every)


def _chunk_lock_key(fit_id: int, index: int) -> int:
    return (fit_id << 20) | index  # one bigint advisory-lock key per (fit, chunk); chunk indices stay below 2^20


@contextmanager
def chunk_in_progress(*, fit_id: int, index: int) -> Iterator[bool]:
    """Compute a bootstrap chunk at most once at a time: True when this worker holds the chunk (the heartbeat
    kept fresh meanwhile); False when another worker is computing it now or stored it already.

    A chunk re-sent by a takeover may be delivered while its first copy still computes; on PostgreSQL a
    session advisory lock keeps the second copy from computing it again (it is released at the end, or when the
    holder's connection dies with its worker). Other databases (SQLite: one machine) rely on the stored-chunk
    check alone.
    """
    locked = connection.vendor == "postgresql"
    if locked:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_chunk_lock_key(fit_id, index)])
            row = cursor.fetchone()
            if not (row and row[0]):
                yield False
                return
    try:
        if FitChunk.objects.filter(fit_id=fit_id, index=index).exists():
            yield False
            return
        with fit_heartbeat(fit_id=fit_id):
            yield True
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_chunk_lock_key(fit_id, index)])
