"""Request-size limit: bodies over the contract's 5 MB are refused with 413 before anything reads them."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


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
