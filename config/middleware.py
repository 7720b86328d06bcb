"""Request middleware: the 5 MB body limit (413), query strings the database cannot compare (400) and a 503 with
Retry-After when the database is unreachable."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

logger = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_SECONDS = 5


class RequestSizeLimitMiddleware:
    """Answer 413 when Content-Length exceeds REQUEST_BODY_MAX_BYTES (Django itself would say 400)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_BODY_MAX_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"errors": {"detail": ["Malformed Content-Length header."]}}, status=400)
        if length > limit:
            message = f"Request body is {length} bytes; the limit is {limit} bytes."
            return JsonResponse({"errors": {"detail": [message]}}, status=413)
        return self.get_response(request)


NUL_MESSAGE = "Must not contain the NUL character (\\u0000)."


class QueryStringTextMiddleware:
    """Refuse a query string holding the NUL character (400, naming the parameter), before any view.

    PostgreSQL cannot hold or compare text with NUL, so a filter on such a value (an admin list filter, an API
    filter) would fail its query with a 500. Django decodes percent-escapes with replacement characters, so NUL is
    the only character of a query string the database refuses.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                shown = name.replace("\x00", "\\u0000")
                if request.path.startswith("/api/"):
                    return JsonResponse({"errors": {shown: [NUL_MESSAGE]}}, status=400)
                return HttpResponseBadRequest(f"Query parameter {shown!r}: {NUL_MESSAGE}", content_type="text/plain")
        return self.get_response(request)


class AdminSelectionMiddleware:
    """Refuse an admin action whose selection is not a list of row ids (400), before any admin filters on it.

    Django's admin filters the changelist on whatever `_selected_action` holds, and fails on text where an id
    belongs; every model in this admin (Django's users and groups, django-axes' logs included) has integer ids.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path.startswith("/admin/"):
            selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
            if any(not (value.isascii() and value.isdigit()) for value in selected):
                return HttpResponseBadRequest(
                    f"{ACTION_CHECKBOX_NAME}: the selection is not a list of row ids; nothing was done.",
                    content_type="text/plain",
                )
        return self.get_response(request)


def database_unavailable_response() -> JsonResponse:
    """503 with Retry-After: the client should try again; nothing was written."""
    response = JsonResponse(
        {"errors": {"detail": ["The database is unavailable; nothing was written. Retry shortly."]}}, status=503
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection anywhere in a request into a 503 with Retry-After, never a traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
            return database_unavailable_response()
        return None
