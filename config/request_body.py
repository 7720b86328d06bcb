"""Request bodies are read whole before any view, so that a body the server cannot read is a clean 4xx.

- `Transfer-Encoding`: only `chunked`, alone, is read. Django knows no other coding: a body sent `gzip, chunked`
  would be read as if it were plain. Any other value is a 400 naming `transfer_encoding`.
- A chunked body (no Content-Length) is read where the server decodes the chunks and says so with the WSGI key
  `wsgi.input_terminated` (gunicorn); any other server (Django's development server) cannot be trusted to end the
  stream, so the client is told to send a Content-Length (411). Django sizes a body by Content-Length alone and
  would otherwise read a chunked body as empty.
- Every body is read here, up to REQUEST_BODY_MAX_BYTES (413 above, as for a Content-Length over it,
  config.middleware). A body that stalls is a 408 (config.gunicorn_worker ends the read); one that is malformed
  (chunked encoding) or ends before its Content-Length is a 400; neither reaches a view half read.
"""

import io
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import UnreadablePostError

from config.request_errors import RequestBodyError


def _refusal(status: int, field: str, message: str) -> JsonResponse:
    return JsonResponse({"errors": {field: [message]}}, status=status)


class RequestBodyMiddleware:
    """Read the request's body (chunked or by Content-Length) before the views; refuse one that cannot be read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        encoding = request.META.get("HTTP_TRANSFER_ENCODING")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                message = f"Transfer-Encoding {encoding!r} is not accepted: send the body as is or 'chunked'."
                return _refusal(400, "transfer_encoding", message)
            if not request.META.get("CONTENT_LENGTH"):
                return self._chunked(request) or self.get_response(request)
        return self._by_length(request) or self.get_response(request)

    def _chunked(self, request: HttpRequest) -> HttpResponse | None:
        if not request.META.get("wsgi.input_terminated"):
            message = "Send the body with a Content-Length header; this server does not read chunked bodies."
            return _refusal(411, "detail", message)
        limit = settings.REQUEST_BODY_MAX_BYTES
        try:
            body = request.META["wsgi.input"].read(limit + 1)
        except RequestBodyError as exc:
            return _refusal(exc.status, "detail", str(exc))
        if len(body) > limit:
            return _refusal(413, "detail", f"Request body is over {limit} bytes; the limit is {limit} bytes.")
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]
        return None

    def _by_length(self, request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None  # config.middleware.RequestSizeLimitMiddleware answers a malformed Content-Length
        if length <= 0 or length > settings.REQUEST_BODY_MAX_BYTES:
            return None  # nothing to read, or a 413 from RequestSizeLimitMiddleware without reading it
        try:
            body = request.body
        except RequestBodyError as exc:
            return _refusal(exc.status, "detail", str(exc))
        except UnreadablePostError as exc:  # another server's read error: the client went away mid-body
            return _refusal(400, "detail", f"The body could not be read: {exc}")
        if len(body) < length:
            message = f"The body ended after {len(body)} of the {length} bytes its Content-Length announced."
            return _refusal(400, "detail", message)
        return None
