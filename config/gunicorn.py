"""gunicorn settings of the image: `gunicorn -c config/gunicorn.py config.wsgi` (docker-compose.yml); the root
gunicorn.conf.py re-exports them, so a plain `gunicorn config.wsgi` from the checkout runs the same way.

Request metrics (ops.metrics) live in each worker process; prometheus_client's multiprocess mode has every
process write them under PROMETHEUS_MULTIPROC_DIR, and a scrape of any process sums them all. The folder is
emptied (or made) when gunicorn starts (counters restart with the server), and a dead worker's gauges are dropped.

Slow and stalled clients (config.gunicorn_worker): each process runs WEB_THREADS threads; reading a request ends
after WEB_IDLE_READ_SECONDS without a byte or WEB_REQUEST_READ_SECONDS in all (a 408 in the API's JSON shape),
and a process accepts connections only while a thread is free. In compose, nginx in front buffers whole requests
and responses as well (docs/operations.md, "Web tier").

The master's hooks that gunicorn calls from a signal handler (`child_exit` runs inside SIGCHLD's) import nothing
and cannot raise: a handler can interrupt the master anywhere, including in the middle of an import of the same
module, and an exception there ends the master and the whole web tier with it.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "config.gunicorn_worker.BoundedThreadWorker"
# Each thread holds its own database connection: workers x threads connections per web container.
threads = int(os.environ.get("WEB_THREADS", "8"))
accesslog = None  # the app logs each request itself, with its request id (ops.middleware)
logger_class = "config.gunicorn_worker.AccessLogger"  # gunicorn's, formatting no line for an access log to /dev/null
# How long an idle client connection stays open for its next request (gunicorn's default is 2 s). Clients that
# log a run make a request every few seconds or faster (MLflow's client keeps its connection); one reused
# connection saves the TCP handshake and the accept per request. Idle kept-alive connections wait in the
# process's poller, not in a thread.
keepalive = int(os.environ.get("WEB_KEEPALIVE_SECONDS", "5"))

IDLE_READ_SECONDS = float(os.environ.get("WEB_IDLE_READ_SECONDS", "10"))
REQUEST_READ_SECONDS = float(os.environ.get("WEB_REQUEST_READ_SECONDS", "60"))

# Set by on_starting, which runs once in the master before any worker exists (not in a signal handler).
_mark_process_dead: Callable[[int], None] | None = None


def on_starting(server: Any) -> None:
    # Set before any worker is forked (and so before the app imports prometheus_client); a folder of this
    # server's own unless one is given.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bitscale-metrics-")
    # Imported only now: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is first imported, and the
    # workers forked from this process inherit the module as imported here.
    from prometheus_client import multiprocess

    global _mark_process_dead
    _mark_process_dead = multiprocess.mark_process_dead


def post_fork(server: Any, worker: Any) -> None:
    # In the new worker process, before it serves: its read limits (config.gunicorn_worker.BoundedThreadWorker).
    worker.idle_read_seconds = IDLE_READ_SECONDS
    worker.request_read_seconds = REQUEST_READ_SECONDS


def child_exit(server: Any, worker: Any) -> None:
    # Runs inside the master's SIGCHLD handler: only signal-safe work, no import, nothing that can raise.
    mark = _mark_process_dead
    if mark is None:
        return
    with contextlib.suppress(Exception):  # a metrics file left behind must never end the master
        mark(worker.pid)
