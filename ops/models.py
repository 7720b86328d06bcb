"""Operational state shared by every process on every machine: the database is the one place they all reach."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker process (one per `celery worker` command) said it was alive."""

    hostname = models.CharField(max_length=255, unique=True)  # celery's node name, e.g. celery@host
    queues = models.CharField(max_length=255, blank=True)  # comma-separated, as consumed
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"


class HistogramBucket(models.Model):
    """One cumulative bucket of a histogram observed in worker processes and read by /metrics.

    Prometheus histograms are cumulative: an observation of 3 s adds one to every bucket whose upper bound
    `le` is at least 3. The bucket with `le` null is +Inf; its `count` is the number of observations and its
    `sum_seconds` their sum.
    """

    name = models.CharField(max_length=100)
    le = models.FloatField(null=True, blank=True)
    count = models.PositiveBigIntegerField(default=0)
    sum_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["name", "le"]
        constraints = [
            models.UniqueConstraint(fields=["name", "le"], name="histogram_bucket_unique"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(le__isnull=True), name="histogram_one_inf_bucket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} le={self.le if self.le is not None else '+Inf'}: {self.count}"
