"""Liveness: the database must answer; the broker's state and the workers seen are reported but never fail it."""

import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from kombu import Connection

from config.middleware import DATABASE_RETRY_AFTER_SECONDS
from ops.selectors import workers_seen

# A broker found unreachable is reported so, without trying again, for BROKER_RETRY_SECONDS (per process and URL):
# while Redis is down, health checks do not each wait for a connection attempt.
_broker_down_until: dict[str, float] = {}
BROKER_CHECK_TIMEOUT_SECONDS = 0.5


def broker_state() -> str:
    """'ok' when the Celery broker accepts a connection at the first attempt (within half a second), else
    'unavailable'."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        folder.mkdir(parents=True, exist_ok=True)
        return "ok"
    now = time.monotonic()
    if _broker_down_until.get(url, 0.0) > now:
        return "unavailable"
    options = {
        **getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
        "socket_connect_timeout": BROKER_CHECK_TIMEOUT_SECONDS,
        "socket_timeout": BROKER_CHECK_TIMEOUT_SECONDS,
    }
    try:
        with Connection(url, connect_timeout=BROKER_CHECK_TIMEOUT_SECONDS, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception:  # any failure to reach the broker is "unavailable", never an error page
        _broker_down_until[url] = now + settings.BROKER_RETRY_SECONDS
        return "unavailable"
    _broker_down_until.pop(url, None)
    return "ok"


def healthz(request: HttpRequest) -> JsonResponse:
    """GET /healthz: 200 with the state of the database and the broker; 503 with Retry-After when the database is
    down."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        response = JsonResponse({"database": "unavailable", "broker": broker_state()}, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    return JsonResponse({"database": "ok", "broker": broker_state(), "workers": workers_state()})


def workers_state() -> dict[str, object] | str:
    """Workers whose heartbeat is younger than three heartbeat periods, and the newest heartbeat of any;
    'unavailable' when they cannot be read (e.g. before the first migrate)."""
    within = 3 * settings.WORKER_HEARTBEAT_SECONDS
    try:
        seen = workers_seen(within_seconds=within)
    except Exception:
        return "unavailable"
    last = seen.last_seen.isoformat().replace("+00:00", "Z") if seen.last_seen else None
    return {"recent": seen.recent, "window_seconds": within, "last_seen": last}
