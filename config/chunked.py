"""Bodies sent with `Transfer-Encoding: chunked` (no Content-Length): read them, or answer 411.

Django sizes a request body by Content-Length alone, so without one it would read a chunked body as empty and
answer as if nothing had been sent. A server that decodes the chunks (gunicorn; it says so with the WSGI key
`wsgi.input_terminated`) hands over a stream that ends with the body: it is read here, up to the body limit.
Any other server (Django's development server) cannot be trusted to end the stream, so the client is told to
send a Content-Length (411 Length Required).
"""

import io
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse


def _is_chunked(request: HttpRequest) -> bool:
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower() and not request.META.get("CONTENT_LENGTH")


class ChunkedBodyMiddleware:
    """Give a chunked request a Content-Length and a body Django can read; 411 where the server cannot tell
    where it ends; 413 above REQUEST_BODY_MAX_BYTES as for any other body."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_chunked(request):
            return self.get_response(request)
        if not request.META.get("wsgi.input_terminated"):
            message = "Send the body with a Content-Length header; this server does not read chunked bodies."
            return JsonResponse({"errors": {"detail": [message]}}, status=411)
        limit = settings.REQUEST_BODY_MAX_BYTES
        body = request.META["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            message = f"Request body is over {limit} bytes; the limit is {limit} bytes."
            return JsonResponse({"errors": {"detail": [message]}}, status=413)
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]
        return self.get_response(request)
