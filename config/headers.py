"""Response headers: the API's no-store and the Content-Security-Policy, their values computed once per process
rather than on every response (the same values: each is computed once by the stock code, Django's cache helpers
and django-csp's `build_policy`, and again when a test changes the settings it reads).

Django's SecurityMiddleware and XFrameOptionsMiddleware stay the stock classes: they cost little (the first reads
its settings once already), and Django's deploy checks look for them by name (security.W001, W002), skipping the
HSTS, nosniff and redirect checks when they are missing."""

import functools
import time
from collections.abc import Callable
from typing import Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.http import http_date


@functools.cache
def never_cache_value() -> str:
    """The Cache-Control of an authenticated API response, as Django's own helpers write it on a response
    without one: `max-age=0, no-cache, no-store, must-revalidate, private`."""
    probe = HttpResponse()
    add_never_cache_headers(probe)
    patch_cache_control(probe, private=True)
    return probe.headers["Cache-Control"]


_expires: tuple[int, str] = (0, "")


def _expires_now() -> str:
    """`Expires: <now>` as add_never_cache_headers writes it, formatted once a second."""
    global _expires
    second = int(time.time())
    if _expires[0] != second:
        _expires = (second, http_date(second))
    return _expires[1]


class NoStoreApiMiddleware:
    """`Cache-Control: no-store` on every API response to a request that carries credentials: a team's runs,
    fits and plans must not stay in a browser's, proxy's or client's cache."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") and request.META.get("HTTP_AUTHORIZATION"):
            headers = response.headers
            if "Cache-Control" in headers or "Expires" in headers:  # a view's own: merged as Django merges it
                add_never_cache_headers(response)
                patch_cache_control(response, private=True)
            else:
                headers["Expires"] = _expires_now()
                headers["Cache-Control"] = never_cache_value()
        return response


_PER_RESPONSE_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


@functools.cache
def _policies() -> tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]]:
    """(policy, excluded prefixes) of CONTENT_SECURITY_POLICY and of its report-only twin, as django-csp builds
    them for a response without a nonce or a view's own changes."""
    found = []
    for report_only, name in ((False, "CONTENT_SECURITY_POLICY"), (True, "CONTENT_SECURITY_POLICY_REPORT_ONLY")):
        prefixes = (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
        found.append((build_policy(report_only=report_only), tuple(prefixes)))
    return found[0], found[1]


class PolicyCSPMiddleware(CSPMiddleware):
    """django-csp's middleware with the policy built once: a response with a nonce, a view's own policy
    (`csp_update` and the like) or an exemption goes through django-csp's own code, as does DEBUG's error page."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            settings.DEBUG
            or getattr(request, "_csp_nonce", None) is not None
            or getattr(response, "_csp_exempt", False) is not False
            or getattr(response, "_csp_exempt_ro", False) is not False
            or any(getattr(response, name, None) is not None for name in _PER_RESPONSE_POLICY)
        ):
            return super().process_response(request, response)
        (policy, excluded), (policy_ro, excluded_ro) = _policies()
        headers = response.headers
        if policy and HEADER not in headers and not request.path_info.startswith(excluded):
            headers[HEADER] = policy
        if policy_ro and HEADER_REPORT_ONLY not in headers and not request.path_info.startswith(excluded_ro):
            headers[HEADER_REPORT_ONLY] = policy_ro
        # As django-csp does: a nonce asked for after the header is written is an error, not a silent no-op.
        request.csp_nonce = self._csp_nonce_post_response_guard  # type: ignore[attr-defined]
        return response

    @functools.cached_property
    def _csp_nonce_post_response_guard(self) -> Any:
        from csp.middleware import CheckableLazyObject

        return CheckableLazyObject(self._csp_nonce_post_response)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _policies.cache_clear()
