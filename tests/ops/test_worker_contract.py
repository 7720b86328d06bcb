"""What docs/operations.md promises about workers: stable task names, one BLAS thread, a heartbeat step."""

import os
import subprocess
import sys
from pathlib import Path

from config.celery import app
from ops.celery import WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[2]


def test_task_names_are_stable_across_releases():
    names = {
        "workers.refit_family",
        "workers.refit_scope",
        "workers.run_fit",
        "workers.run_fit_chunk",
        "workers.finish_fit",
    }
    assert names | {"workers.sweep_fits"} <= set(app.tasks)


def test_workers_use_one_blas_thread_and_record_heartbeats():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    code = "import os, config.celery; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1", "1"], done.stderr
    assert WorkerHeartbeat in app.steps["consumer"]
