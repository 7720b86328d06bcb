"""Celery queues. Workers consume both (`-Q celery,fits`); a fits-only worker can run on another machine."""

from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "celery"  # short bookkeeping: debounced refit requests, the sweep
    FITS = "fits"  # scipy point fits and bootstrap chunks: seconds to minutes of CPU each
