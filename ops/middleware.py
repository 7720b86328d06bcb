"""Request middleware: probes answered before host validation, and a request id on every request."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.logs import request_id

logger = logging.getLogger("bitscale.request")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# An incoming id is kept when it is short and plain (it lands in logs); anything else gets a fresh one.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ProbeMiddleware:
    """Serve /healthz and /metrics first, whatever the Host header and scheme.

    Container healthchecks and Prometheus reach the server by an address (127.0.0.1, the service name) that
    DJANGO_ALLOWED_HOSTS need not list, over plain HTTP even when DJANGO_HTTPS redirects browsers. Neither
    response builds a URL from the Host header, so answering them for any host is safe; /metrics still
    requires its token.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            from ops.health import healthz

            return healthz(request)
        if request.path == "/metrics":
            from ops.metrics import metrics_view

            return metrics_view(request)
        return self.get_response(request)


class RequestIdMiddleware:
    """Tag the request with an id (the caller's X-Request-ID, or a new one), echo it, log one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get(REQUEST_ID_META, "")  # not request.headers: that builds a dict of them all
        current = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(current)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = current
            if not logger.isEnabledFor(logging.INFO):  # the line's fields are not even built
                return response
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            request_id.reset(token)
