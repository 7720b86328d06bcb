"""gunicorn's threaded worker (gthread) made safe against slow and stalled clients: config/gunicorn.py uses it.

gthread waits for a connection's first bytes in its event loop, but then reads the request on a pool thread with
a blocking socket and no time limit: a client that sends part of its headers or body and stops holds that thread
for ever, and a process whose threads all wait on such clients still accepts new connections, which queue behind
them. This worker adds four rules:

1. **Bounded reads.** Reading a request (its headers and its body, however the application reads it) ends when
   the client sends nothing for `idle_read_seconds`, or when the request has been read for
   `request_read_seconds` in all. Stalled headers get a 408 in the API's JSON error shape from here; a stalled
   body raises config.request_errors.RequestReadTimeout in the application, which answers 408 the same way
   (config.request_body). Writing a response is bounded by `write_seconds` per write.
2. **Connections that never speak** (connected, nothing sent) are closed after `idle_read_seconds`; they hold no
   thread meanwhile.
3. **A process accepts new connections only while one of its threads is free**, so a process busy with slow
   clients leaves new ones to the other processes instead of queueing them behind its own.
4. **gunicorn's own refusals are JSON** (`{"errors": {"detail": [...]}}`): a malformed request line or header
   400, a request line over `limit_request_line` 414, headers over the limits 431, a stall 408, a transfer coding
   other than chunked 400. A request whose body could not be read closes its connection after the answer,
   rather than the next request on it reading the rest of a broken body.

The main loop of the worker keeps notifying the master, so a thread waiting on a client never gets its process
killed for silence (the sync worker's fate).
"""

import contextlib
import errno
import json
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from gunicorn.glogging import Logger
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from config.request_errors import MalformedBody, RequestBodyError, RequestReadTimeout


class BoundedSocket:
    """A client socket whose reads end at the request's deadline or after an idle period, whichever is first.

    `start_request()` opens a new request's read window. Writes use their own limit. Everything else is the
    socket's own (fileno, setblocking, close...), so gthread's event loop uses this object as the socket.
    """

    def __init__(self, sock: socket.socket, *, idle: float, total: float, write: float) -> None:
        self._sock = sock
        self._idle = idle
        self._total = total
        self._write = write
        self._deadline = time.monotonic() + total

    def start_request(self) -> None:
        self._deadline = time.monotonic() + self._total

    def _read_timeout(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestReadTimeout(f"The request was not received within {self._total:g} seconds.")
        return min(remaining, self._idle)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._sock.settimeout(self._read_timeout())
        try:
            return self._sock.recv(size, flags)
        except TimeoutError:
            raise RequestReadTimeout(
                f"The client sent nothing for {min(self._idle, self._total):g} seconds before the request was complete."
            ) from None

    def send(self, data: bytes, flags: int = 0) -> int:
        self._sock.settimeout(self._write)
        return self._sock.send(data, flags)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._sock.settimeout(self._write)
        self._sock.sendall(data, flags)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self._sock.settimeout(self._write)
        return self._sock.sendfile(file, offset, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class GuardedInput:
    """The request's `wsgi.input`: a failure to read it becomes a RequestBodyError the application can answer,
    and is remembered so that the connection is closed after the response."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.failed = False

    def _guard(self, read: Callable[..., Any], *args: Any) -> Any:
        try:
            return read(*args)
        except RequestBodyError:
            self.failed = True
            raise
        except http_errors.NoMoreData:
            self.failed = True
            raise MalformedBody("The body ended before its last chunk.") from None
        except http_errors.InvalidChunkSize as exc:
            self.failed = True
            raise MalformedBody(f"Invalid chunk size {exc.data!r} in the chunked body.") from None
        except http_errors.ChunkMissingTerminator as exc:
            self.failed = True
            raise MalformedBody(f"A chunk of the chunked body does not end with CRLF (found {exc.term!r}).") from None

    def read(self, size: int | None = None) -> bytes:
        return self._guard(self._body.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._guard(self._body.readline, size)

    def readlines(self, size: int | None = None) -> list[bytes]:
        return self._guard(self._body.readlines, size)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _json_error(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"errors": {"detail": [message]}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _refusal(exc: BaseException) -> tuple[int, str, str] | None:
    """Status, reason and message for what a client did wrong; None for anything else (a server error)."""
    if isinstance(exc, RequestReadTimeout):
        return 408, "Request Timeout", str(exc)
    if isinstance(exc, RequestBodyError):
        return exc.status, "Bad Request", str(exc)
    if isinstance(exc, http_errors.LimitRequestLine):
        return 414, "URI Too Long", f"The request line is {exc.size} bytes; the limit is {exc.max_size}."
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, "Request Header Fields Too Large", f"Request headers too large: {exc}."
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 400, "Bad Request", f"Transfer-Encoding: only chunked is accepted ({exc})."
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return 403, "Forbidden", "Request forbidden."
    if isinstance(exc, http_errors.ConfigurationProblem):
        return None
    if isinstance(exc, http_errors.ParseException | http_errors.InvalidChunkSize | http_errors.ChunkMissingTerminator):
        return 400, "Bad Request", f"Malformed request: {exc}."
    return None


class BoundedThreadWorker(ThreadWorker):
    """gthread with bounded reads, closed silent connections, accepting only with a free thread, JSON refusals."""

    wsgi: Callable[..., Iterable[bytes]]
    idle_read_seconds = 10.0
    request_read_seconds = 60.0
    write_seconds = 30.0

    def init_process(self) -> None:
        self._busy = 0
        self._listeners: dict[Any, Any] = {}  # listening socket -> its poller callback, while accepting is paused
        self._fresh: deque[TConn] = deque()  # accepted connections in order, to close those that never spoke
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = partial(_guarded_application, self.wsgi)

    # Connections -----------------------------------------------------------------------------------------

    def accept(self, server: Any, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        bounded = BoundedSocket(
            sock, idle=self.idle_read_seconds, total=self.request_read_seconds, write=self.write_seconds
        )
        conn = TConn(self.cfg, bounded, client, server)
        conn.accepted_at = time.monotonic()
        conn.spoke = False
        self.nr_conns += 1
        self._fresh.append(conn)
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        conn.spoke = True
        super().on_client_socket_readable(conn, client)

    def murder_keepalived(self) -> None:
        super().murder_keepalived()
        limit = time.monotonic() - self.idle_read_seconds
        while self._fresh and self._fresh[0].accepted_at <= limit:
            conn = self._fresh.popleft()
            if conn.spoke:
                continue
            self.nr_conns -= 1
            with self._lock, contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            conn.close()

    # Accept only while a thread is free ------------------------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        with self._lock:
            self._busy += 1
            if self._busy >= self.cfg.threads:
                self._pause_accepting()
        super().enqueue_req(conn)

    def finish_request(self, fs: Any) -> None:
        try:
            super().finish_request(fs)
        finally:
            with self._lock:
                self._busy -= 1
                if self._busy < self.cfg.threads:
                    self._resume_accepting()

    def _pause_accepting(self) -> None:
        for sock in self.sockets:
            try:
                self._listeners[sock] = self.poller.get_key(sock).data
                self.poller.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass

    def _resume_accepting(self) -> None:
        while self._listeners and self.alive:
            sock, callback = self._listeners.popitem()
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.register(sock, selectors.EVENT_READ, callback)

    # Requests --------------------------------------------------------------------------------------------

    def handle(self, conn: TConn) -> tuple[bool, TConn]:
        conn.sock.start_request()
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        refusal = _refusal(exc)
        if refusal is None:
            super().handle_error(req, client, addr, exc)  # logs the traceback; a server error
            return
        status, reason, message = refusal
        peer = addr[0] if addr else ""
        self.log.warning("Refused request from ip=%s: %s %s", peer, status, message)
        try:
            client.sendall(_json_error(status, reason, message))
        except OSError:
            self.log.debug("Failed to send the refusal.")


def _guarded_application(
    application: Callable[..., Iterable[bytes]], environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    body = GuardedInput(environ["wsgi.input"])
    environ["wsgi.input"] = body
    result = application(environ, start_response)
    if body.failed:
        # The rest of the body is unread or unreadable: end the connection after this answer.
        start_response.__self__.force_close()  # type: ignore[attr-defined]
    return result


class AccessLogger(Logger):
    """gunicorn's logger, except that an access log sent to /dev/null (`--access-logfile /dev/null`, as the
    benches pass) is not formatted first: gunicorn builds each line (a dict of a dozen fields, the time, a log
    record) before the handler throws it away, about 6% of a worker's CPU per MLflow request. Any other access
    log target, a logging config or syslog gets every line as before."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        cfg = self.cfg
        if cfg.accesslog == os.devnull and not (
            cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.syslog
        ):
            return
        super().access(resp, req, environ, request_time)
