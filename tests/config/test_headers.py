"""config.headers: the no-store and Content-Security-Policy headers, computed once, are what the stock code writes;
config.browser_middleware: the API gets no session, user or messages from Django, the admin does."""

from typing import Any

import pytest
from csp.constants import NONCE, SELF
from csp.decorators import csp_exempt, csp_update
from csp.middleware import CSPMiddleware
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.utils.cache import add_never_cache_headers, patch_cache_control

from config.browser_middleware import (
    BrowserAuthenticationMiddleware,
    BrowserMessageMiddleware,
    BrowserSessionMiddleware,
)
from config.headers import NoStoreApiMiddleware, PolicyCSPMiddleware, never_cache_value

pytestmark = pytest.mark.django_db
CSP = "Content-Security-Policy"


def _stock_no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    patch_cache_control(response, private=True)
    return response


def _headers(response: HttpResponse) -> dict[str, str]:
    return dict(response.headers.items())


def test_no_store_value_is_djangos():
    assert never_cache_value() == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert never_cache_value() == _stock_no_store(HttpResponse())["Cache-Control"]


@pytest.mark.parametrize(
    "preset",
    [
        {},
        {"Cache-Control": "private, max-age=60"},
        {"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"},
        {"Cache-Control": "no-cache"},
    ],
)
def test_no_store_on_authenticated_api_responses_as_django_writes_it(preset):
    request = RequestFactory().get("/api/v1/runs/", HTTP_AUTHORIZATION="Bearer x")

    def view(_: HttpRequest) -> HttpResponse:
        response = HttpResponse("{}")
        for name, value in preset.items():
            response[name] = value
        return response

    ours = NoStoreApiMiddleware(view)(request)
    expected = _stock_no_store(view(request))
    assert ours["Cache-Control"] == expected["Cache-Control"]
    assert "no-store" in ours["Cache-Control"]
    assert "private" in ours["Cache-Control"]
    assert abs(_epoch(ours["Expires"]) - _epoch(expected["Expires"])) <= 1


def _epoch(value: str) -> int:
    from django.utils.http import parse_http_date

    return parse_http_date(value)


@pytest.mark.parametrize(("path", "authorization"), [("/api/v1/runs/", ""), ("/admin/", "Bearer x"), ("/healthz", "")])
def test_no_store_only_where_credentials_reach_the_api(path, authorization):
    request = RequestFactory().get(path, HTTP_AUTHORIZATION=authorization)
    response = NoStoreApiMiddleware(lambda _: HttpResponse())(request)
    assert "Cache-Control" not in response
    assert "Expires" not in response


def _both_csp(view, path="/api/v1/runs/"):
    """The headers of django-csp's own middleware and of ours, for the same view."""
    found = []
    for middleware in (CSPMiddleware, PolicyCSPMiddleware):
        request = RequestFactory().get(path)
        found.append(_headers(middleware(view)(request)))
    return found


def test_policy_is_django_csps():
    stock, ours = _both_csp(lambda _: HttpResponse())
    assert ours == stock
    assert "script-src 'self'" in ours[CSP]
    assert "frame-ancestors 'none'" in ours[CSP]


def test_a_views_own_policy_and_exemption_go_through_django_csp():
    @csp_update({"img-src": "https://example.org"})
    def updated(_: HttpRequest) -> HttpResponse:
        return HttpResponse()

    @csp_exempt()
    def exempt(_: HttpRequest) -> HttpResponse:
        return HttpResponse()

    stock, ours = _both_csp(updated)
    assert ours == stock
    assert "https://example.org" in ours[CSP]
    stock, ours = _both_csp(exempt)
    assert ours == stock
    assert CSP not in ours


def test_a_response_that_has_a_policy_keeps_it():
    def own(_: HttpRequest) -> HttpResponse:
        response = HttpResponse()
        response[CSP] = "default-src 'none'"
        return response

    stock, ours = _both_csp(own)
    assert ours == stock
    assert ours[CSP] == "default-src 'none'"


def test_a_nonce_goes_into_the_header():
    def with_nonce(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(request.csp_nonce))  # type: ignore[attr-defined]

    with override_settings(CONTENT_SECURITY_POLICY={"DIRECTIVES": {"script-src": [SELF, NONCE]}}):
        response = PolicyCSPMiddleware(with_nonce)(RequestFactory().get("/admin/"))
    assert f"script-src 'self' 'nonce-{response.content.decode()}'" in response[CSP]


def test_a_changed_policy_setting_is_seen():
    stock, ours = _both_csp(lambda _: HttpResponse())
    policy = {"DIRECTIVES": {"default-src": ["'none'"]}, "EXCLUDE_URL_PREFIXES": ["/excluded/"]}
    with override_settings(CONTENT_SECURITY_POLICY=policy, CONTENT_SECURITY_POLICY_REPORT_ONLY=policy):
        stock, ours = _both_csp(lambda _: HttpResponse())
        assert ours == stock
        assert ours[CSP] == "default-src 'none'"
        assert ours["Content-Security-Policy-Report-Only"] == "default-src 'none'"
        stock, ours = _both_csp(lambda _: HttpResponse(), path="/excluded/page")
        assert ours == stock
        assert CSP not in ours
    _, after = _both_csp(lambda _: HttpResponse())
    assert "script-src 'self'" in after[CSP]


def test_every_path_still_carries_the_policy(client_rw):
    for response in [client_rw.get("/api/v1/runs/"), Client().get("/healthz"), Client().get("/admin/login/")]:
        assert "frame-ancestors 'none'" in response[CSP]


# Django's session, authentication and messages middleware: the admin's, not the API's ------------------------


def _seen(path: str) -> HttpRequest:
    seen: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse()

    chain: Any = BrowserSessionMiddleware(BrowserAuthenticationMiddleware(BrowserMessageMiddleware(view)))  # type: ignore[arg-type]
    response = chain(RequestFactory().get(path))
    assert response.status_code == 200
    return seen[0]


def test_api_requests_get_no_session_user_or_messages():
    request = _seen("/api/2.0/mlflow/runs/get")
    assert not hasattr(request, "session")
    assert not hasattr(request, "user")
    assert not hasattr(request, "_messages")


def test_other_requests_get_them_as_from_django():
    request = _seen("/admin/")
    assert hasattr(request, "session")
    assert hasattr(request, "_messages")
    assert isinstance(request.user, AnonymousUser)


def test_the_api_answers_without_them_and_the_admin_login_still_works(client_rw, django_user_model):
    assert client_rw.get("/api/v1/runs/").status_code == 200
    response = client_rw.post("/api/2.0/mlflow/experiments/create", {"name": "headers"}, format="json")
    assert response.status_code == 200, response.content
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw-1234-long-enough")
    browser = Client()
    browser.force_login(user)
    response = browser.get("/admin/")
    assert response.status_code == 200
    assert response.wsgi_request.user == user
