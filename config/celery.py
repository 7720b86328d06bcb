"""The Celery application, configured from Django settings under the CELERY_ namespace."""

import os

from celery import Celery

from ops.celery import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# One BLAS thread per process: workers run one fit task per process, and BLAS threads on top of that
# oversubscribe the cores (measured: 25 bootstrap draws 3.5 s with default threads, 1.8 s with one, on 2 cores).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

app = Celery("bitscale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["consumer"].add(WorkerHeartbeat)  # each worker records that it is alive (/healthz, /metrics)
