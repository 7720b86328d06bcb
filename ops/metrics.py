"""Prometheus metrics at /metrics, behind a bearer token (METRICS_TOKEN; 404 while it is unset).

- Per view, counted in each web process: bitscale_http_requests_total and
  bitscale_http_request_duration_seconds. Under gunicorn (config/gunicorn.py) every worker process writes them
  to PROMETHEUS_MULTIPROC_DIR and a scrape sums all processes.
- Read from the database and the broker at scrape time, so any web process reports the whole deployment:
  fits per status, dirty scopes and the refit lag, the bootstrap chunk duration histogram (observed by workers,
  ops.celery), workers seen recently, and the Redis broker's queue lengths.
"""

import hmac
import logging
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from ops import selectors
from ops.celery import CHUNK_DURATION

logger = logging.getLogger(__name__)
BROKER_QUEUES = ("celery", "fits")

REQUESTS = Counter(
    "bitscale_http_requests", "HTTP requests answered, by view, method and status.", ["view", "method", "status"]
)
LATENCY = Histogram(
    "bitscale_http_request_duration_seconds",
    "Time to answer an HTTP request, by view.",
    ["view"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


class RequestMetricsMiddleware:
    """Count and time every request by the name of the view that answered it ("unmatched" for a 404)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route or "unnamed") if match is not None else "unmatched"
        REQUESTS.labels(view, request.method or "", str(response.status_code)).inc()
        LATENCY.labels(view).observe(time.perf_counter() - started)
        return response


class DeploymentCollector:
    """Gauges and the chunk histogram read from the database and the broker at each scrape."""

    def collect(self) -> Iterator[Metric]:
        database_up = GaugeMetricFamily("bitscale_database_up", "1 when the database answered this scrape.")
        try:
            metrics = list(self._from_database())
        except Exception:  # an unreachable database is a reading of 0, never a failed scrape
            logger.warning("metrics: database unavailable", exc_info=True)
            database_up.add_metric([], 0)
            metrics = []
        else:
            database_up.add_metric([], 1)
        yield database_up
        yield from metrics
        yield from self._from_broker()

    def _from_database(self) -> Iterator[Metric]:
        fits = GaugeMetricFamily("bitscale_fits", "Fits in each status (all versions kept).", labels=["status"])
        for status, count in selectors.fit_status_counts().items():
            fits.add_metric([status], count)
        yield fits
        dirty, lag = selectors.refit_lag_seconds()
        yield GaugeMetricFamily(
            "bitscale_dirty_scopes",
            "Families with unfitted changes, and laws deferred behind a fit in flight.",
            value=dirty,
        )
        yield GaugeMetricFamily(
            "bitscale_refit_lag_seconds", "Age of the oldest change not yet fitted (0 when none).", value=lag
        )
        buckets, count, total = selectors.histogram_buckets(CHUNK_DURATION)
        chunks = HistogramMetricFamily(CHUNK_DURATION, "Duration of bootstrap chunk tasks that succeeded.")
        chunks.add_metric([], [(repr(le), n) for le, n in buckets] + [("+Inf", count)], sum_value=total)
        yield chunks
        window = 3 * settings.WORKER_HEARTBEAT_SECONDS
        seen = selectors.workers_seen(within_seconds=window)
        yield GaugeMetricFamily(
            "bitscale_workers_seen", f"Celery workers whose heartbeat is younger than {window} s.", value=seen.recent
        )

    def _from_broker(self) -> Iterator[Metric]:
        url = settings.CELERY_BROKER_URL
        if not url.startswith(("redis://", "rediss://")):
            return
        up = GaugeMetricFamily("bitscale_broker_up", "1 when the Redis broker answered this scrape.")
        try:
            lengths = selectors.redis_queue_lengths(url, BROKER_QUEUES)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("bitscale_broker_queue_length", "Messages waiting in a queue.", labels=["queue"])
        for queue, length in lengths.items():
            depth.add_metric([queue], length)
        yield depth


def render() -> bytes:
    """The exposition text: request metrics of every web process, then the deployment's readings."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        processes = CollectorRegistry()
        MultiProcessCollector(processes, path=settings.PROMETHEUS_MULTIPROC_DIR)
        requests = generate_latest(processes)
    else:
        requests = generate_latest(REGISTRY)
    deployment = CollectorRegistry()
    deployment.register(DeploymentCollector())
    return requests + generate_latest(deployment)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics with `Authorization: Bearer <METRICS_TOKEN>`; 404 while no token is set, 403 for a wrong one."""
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse("not found\n", status=404, content_type="text/plain")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return HttpResponse("a valid metrics token is required\n", status=403, content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
