"""A request body the web server could not read, as the server reports it to the application.

config.gunicorn_worker raises these from the WSGI input stream (a body that stalls, malformed chunked encoding,
a client that stops before the end); config.request_body answers them in the API's error shape. Neither is an OSError,
so Django passes them through unchanged (it would wrap an OSError in UnreadablePostError), and nothing here
imports Django or gunicorn: the gunicorn master loads this module before any Django code.
"""


class RequestBodyError(Exception):
    """The body cannot be read to its end; `status` is the answer's HTTP status."""

    status = 400


class RequestReadTimeout(RequestBodyError):
    """The client sent nothing for the idle read limit, or the request took longer than its read limit."""

    status = 408


class MalformedBody(RequestBodyError):
    """The body is not valid in its transfer coding (a chunk size that is not hex, a chunk without its CRLF) or
    ended before the length it announced."""

    status = 400
