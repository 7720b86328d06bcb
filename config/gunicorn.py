"""gunicorn settings of the image: `gunicorn -c config/gunicorn.py config.wsgi` (docker-compose.yml).

Request metrics (ops.metrics) live in each worker process; prometheus_client's multiprocess mode has every
process write them under PROMETHEUS_MULTIPROC_DIR, and a scrape of any process sums them all. The folder is
emptied (or made) when gunicorn starts (counters restart with the server), and a dead worker's gauges are dropped.
"""

import os
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
accesslog = None  # the app logs each request itself, with its request id (ops.middleware)


def on_starting(server: Any) -> None:
    # Set before any worker is forked (and so before the app imports prometheus_client); a folder of this
    # server's own unless one is given.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bitscale-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
