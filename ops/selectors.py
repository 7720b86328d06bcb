"""Reads for /healthz and /metrics."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from fits.models import Fit, FitScope
from ops.models import HistogramBucket, WorkerHeartbeat
from runs.models import FamilyChange

# Kombu's Redis transport keeps a queue's messages of priority p > 0 in the list "<queue>\x06\x16<p>".
REDIS_PRIORITY_SEPARATOR = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)


@dataclass(frozen=True)
class WorkersSeen:
    recent: int  # workers whose last heartbeat is younger than the window
    last_seen: datetime | None  # the newest heartbeat of any worker


def workers_seen(*, within_seconds: int) -> WorkersSeen:
    since = timezone.now() - timedelta(seconds=within_seconds)
    heartbeats: QuerySet[WorkerHeartbeat] = WorkerHeartbeat.objects.all()
    newest = heartbeats.order_by("-seen_at").values_list("seen_at", flat=True).first()
    return WorkersSeen(recent=heartbeats.filter(seen_at__gte=since).count(), last_seen=newest)


def fit_status_counts() -> dict[str, int]:
    """Number of fits in each status (every status present, zero when none)."""
    counts = dict.fromkeys(Fit.Status.values, 0)
    for row in Fit.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def refit_lag_seconds() -> tuple[int, float]:
    """(families and laws awaiting a refit, age in seconds of the oldest unfitted change; 0 when none): pending
    family changes (runs.models.FamilyChange) and laws deferred behind a fit in flight (FitScope.dirty_since)."""
    scopes = FitScope.objects.filter(dirty_since__isnull=False).aggregate(n=Count("id"), oldest=Min("dirty_since"))
    changes = FamilyChange.objects.filter(pending_since__isnull=False).aggregate(
        n=Count("id"), oldest=Min("pending_since")
    )
    oldest = [t for t in (scopes["oldest"], changes["oldest"]) if t is not None]
    if not oldest:
        return 0, 0.0
    return scopes["n"] + changes["n"], max(0.0, (timezone.now() - min(oldest)).total_seconds())


def histogram_buckets(name: str) -> tuple[list[tuple[float, int]], int, float]:
    """(finite buckets as (upper bound, cumulative count), total count, sum) of a stored histogram."""
    finite: list[tuple[float, int]] = []
    total, total_sum = 0, 0.0
    for bucket in HistogramBucket.objects.filter(name=name):
        if bucket.le is None:
            total, total_sum = bucket.count, bucket.sum_seconds
        else:
            finite.append((bucket.le, bucket.count))
    return sorted(finite), total, total_sum


def redis_queue_lengths(url: str, queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting in each Celery queue of a Redis broker (all priorities); raises if Redis is unreachable."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
            for step in REDIS_PRIORITY_STEPS:
                pipe.llen(f"{queue}{REDIS_PRIORITY_SEPARATOR}{step}")
        lengths = pipe.execute()
    finally:
        client.close()
    per_queue = 1 + len(REDIS_PRIORITY_STEPS)
    return {queue: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)}
