"""Writes of operational state: worker heartbeats and histogram observations (from worker processes)."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ops.models import HistogramBucket, WorkerHeartbeat

# A worker not seen for this long is forgotten (container hostnames change on every restart).
HEARTBEAT_RETENTION = timedelta(days=1)


def worker_heartbeat_record(*, hostname: str, queues: Sequence[str], started_at: datetime) -> None:
    """This worker is alive now; rows of workers gone for a day are removed."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255],
        defaults={"queues": ",".join(sorted(queues))[:255], "started_at": started_at, "seen_at": now},
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - HEARTBEAT_RETENTION).delete()


def histogram_observe(*, name: str, bounds: Sequence[float], seconds: float) -> None:
    """Add one observation to the named cumulative histogram (creating its buckets on first use).

    The +Inf row is locked first, so concurrent observers of one histogram queue behind each other instead of
    deadlocking on the bucket rows.
    """
    with transaction.atomic():
        infinity = HistogramBucket.objects.select_for_update().filter(name=name, le__isnull=True).first()
        if infinity is None:
            HistogramBucket.objects.bulk_create(
                [HistogramBucket(name=name, le=bound) for bound in bounds] + [HistogramBucket(name=name, le=None)],
                ignore_conflicts=True,  # another process created them meanwhile
            )
            HistogramBucket.objects.select_for_update().filter(name=name, le__isnull=True).first()
        HistogramBucket.objects.filter(Q(le__gte=seconds) | Q(le__isnull=True), name=name).update(count=F("count") + 1)
        HistogramBucket.objects.filter(name=name, le__isnull=True).update(sum_seconds=F("sum_seconds") + seconds)
