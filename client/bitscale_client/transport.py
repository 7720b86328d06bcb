"""HTTP with bounded retries: exponential backoff with full jitter, honouring Retry-After.

Retried: connection errors and timeouts, 5xx and 429. Not retried: every other 4xx, which
says the request itself is wrong and would fail the same way again. Every write the client
makes is idempotent (runs carry an external_id), so a retried POST never makes a second run.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bitscale_client.errors import ServerUnavailable, error_for_status

log = logging.getLogger("bitscale_client")

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
Sleep = Callable[[float], None]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # a module-level name, so tests can replace it


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: attempt k (0-based) waits up to min(cap, base * 2**k) seconds."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0  # a server asking for longer than this is treated as down

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt + 1`; the server's Retry-After wins when it gives one."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))  # full jitter


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    rng: random.Random,
    stream: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request with retries; returns the 2xx response or raises the matching BitscaleError.

    With `stream=True` the 2xx response is returned unread (the caller must close it).
    """
    last: str = "no attempt made"
    last_status: int | None = None
    for attempt in range(policy.max_retries + 1):
        retry_after: float | None = None
        try:
            request = http.build_request(method, url, **kwargs)
            response = http.send(request, stream=stream)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
            last, last_status = f"{type(exc).__name__}: {exc}", None
        else:
            if response.is_success:
                return response
            if stream:
                response.read()
            if response.status_code not in RETRIED_STATUSES:
                raise error_for_status(response.status_code, _body(response), method=method, url=str(request.url))
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            last, last_status = f"HTTP {response.status_code}", response.status_code
            if retry_after is not None and retry_after > policy.retry_after_max:
                break  # the server says it is down for longer than we are willing to wait
        if attempt == policy.max_retries:
            break
        wait = policy.delay(attempt, retry_after, rng)
        log.info("%s %s failed (%s); retry %d/%d in %.1fs", method, url, last, attempt + 1, policy.max_retries, wait)
        _sleep(wait)
    raise ServerUnavailable(f"{method} {url}: gave up after {attempt + 1} attempt(s); last: {last}", status=last_status)
