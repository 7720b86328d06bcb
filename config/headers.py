"""Response headers the API adds to what Django and django-csp set."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control


class NoStoreApiMiddleware:
    """`Cache-Control: no-store` on every API response to a request that carries credentials: a team's runs,
    fits and plans must not stay in a browser's, proxy's or client's cache."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") and request.META.get("HTTP_AUTHORIZATION"):
            add_never_cache_headers(response)
            patch_cache_control(response, private=True)
        return response
