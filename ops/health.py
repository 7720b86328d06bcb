"""Liveness: the database must answer; the broker's state and the workers seen are reported but never fail it."""

from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from kombu import Connection

from ops.selectors import workers_seen


def broker_state() -> str:
    """'ok' when the Celery broker accepts a connection within a second, else 'unavailable'."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        folder.mkdir(parents=True, exist_ok=True)
        return "ok"
    try:
        with Connection(url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
    except Exception:  # any failure to reach the broker is "unavailable", never an error page
        return "unavailable"
    return "ok"


def healthz(request: HttpRequest) -> JsonResponse:
    """GET /healthz: 200 with the state of the database and the broker; 503 when the database is down."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"database": "unavailable", "broker": broker_state()}, status=503)
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
