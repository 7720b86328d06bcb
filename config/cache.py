"""A Redis cache that a Redis outage cannot turn into errors: the API keeps answering without it.

What the cache holds can be lost or kept per process for a while: the per-key rate-limit counters and rendered
plots. So when Redis does not answer, each operation falls back to a local-memory cache of this process (the
rate limit then counts per process, as without CACHE_URL) and Redis is not tried again for
`CACHE_RETRY_SECONDS`, so requests do not each wait for a connection timeout. Each fallback is logged (once per
outage and process) and counted in `bitscale_cache_fallbacks_total`.
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from prometheus_client import Counter
from redis.exceptions import RedisError

logger = logging.getLogger("bitscale.cache")

FALLBACKS = Counter(
    "bitscale_cache_fallbacks", "Cache operations answered by the process's local memory because Redis failed."
)

# Timeouts for the Redis connection when settings give none: a request waits at most this long for a Redis that
# does not answer, once per CACHE_RETRY_SECONDS.
DEFAULT_OPTIONS = {"socket_connect_timeout": 0.25, "socket_timeout": 0.5}


# When to try Redis again, per Redis location, for the whole process: Django makes one cache object per thread,
# and the threads of a web process share what they learnt about Redis and the memory they fall back to.
_retry_at: dict[str, float] = {}


class FailSoftRedisCache(RedisCache):
    """Django's Redis cache, with every operation falling back to local memory while Redis fails."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        params = {**params, "OPTIONS": {**DEFAULT_OPTIONS, **params.get("OPTIONS", {})}}
        super().__init__(server, params)
        self._location = str(server)
        # LocMemCache objects of one name share their storage within the process.
        self._fallback = LocMemCache(f"bitscale-fallback:{self._location}", {"TIMEOUT": params.get("TIMEOUT", 300)})

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        retry_at = _retry_at.get(self._location, 0.0)
        if now >= retry_at:
            try:
                result = getattr(super(), operation)(*args, **kwargs)
            except (RedisError, OSError) as error:
                if not retry_at:
                    logger.warning("cache: Redis failed (%s); this process uses local memory for now", error)
                _retry_at[self._location] = now + settings.CACHE_RETRY_SECONDS
            else:
                if retry_at:
                    logger.info("cache: Redis answers again")
                    _retry_at.pop(self._location, None)
                return result
        FALLBACKS.inc()
        return getattr(self._fallback, operation)(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("add", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("touch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_many", *args, **kwargs)

    def clear(self) -> Any:
        return self._call("clear")


def cache_is_shared() -> bool:
    """Whether what one process caches, another reads (Redis, a file cache): only then is computing ahead for the
    web processes (a fit's plots, a run's forecast) worth the worker's time."""
    backend = str(settings.CACHES["default"]["BACKEND"])
    return not backend.endswith(("LocMemCache", "DummyCache"))
