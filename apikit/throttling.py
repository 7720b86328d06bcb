"""Rate limiting per API key: 429 with Retry-After once a key exceeds API_RATE_LIMIT."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Counts requests per key (not per IP: a cluster shares one address) in the default cache.

    With the local-memory cache each web process counts on its own; set CACHE_URL to Redis to share counts.
    """

    scope = "api_key"

    def get_rate(self) -> str | None:
        return settings.API_RATE_LIMIT or None  # read per request, so tests and deployments can change it

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        if key is None:
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
