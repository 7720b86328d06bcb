"""Content-Security-Policy on every page, no-store on authenticated API responses, admin login lockout."""

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import PASSWORD, staff_user
from tests.hardening.fitted import FAMILY

pytestmark = pytest.mark.django_db


def _csp(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


@pytest.fixture
def admin_client(django_user_model, team):
    user = staff_user("root", team=team, role="owner", is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/docs/", "/api/v1/schema/", "/healthz", "/nowhere"])
def test_every_page_carries_a_policy_forbidding_inline_scripts(path):
    response = Client().get(path)
    csp = _csp(response)
    assert csp["script-src"] == "script-src 'self'"
    assert "'unsafe-inline'" not in csp["script-src"]
    assert csp["object-src"] == "object-src 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"


def test_admin_pages_and_their_svg_plots_carry_the_policy_and_no_inline_script(admin_client, fitted):
    # The fit page links matplotlib's SVGs (style attributes, a <style> block): styles may be inline, scripts
    # may not, and neither the page nor a plot has any.
    fit_page = f"/admin/fits/fit/{fitted['precision'].pk}/change/"
    plot = f"/admin/fits/fit/{fitted['precision'].pk}/plot/residuals.svg"
    for path in ["/admin/", fit_page, plot, "/admin/runs/run/"]:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert "style-src 'self' 'unsafe-inline'" in response.headers["Content-Security-Policy"]
        html = response.content.decode()
        assert "<script>" not in html.replace(" ", "")
        assert "onclick=" not in html
        assert "onload=" not in html
    svg = admin_client.get(plot).content.decode()
    assert svg.startswith("<svg")
    assert "<script" not in svg


def test_the_docs_page_loads_its_script_from_a_url(client):
    html = client.get("/api/v1/docs/").content.decode()
    assert "<script>" not in html.replace(" ", "")
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


def test_authenticated_api_responses_are_not_stored(client_rw, fitted):
    for response in [
        client_rw.get("/api/v1/runs/"),
        client_rw.get("/api/v1/fits/"),
        client_rw.get(f"/api/v1/predict/?family={FAMILY}&n_params=1000000000&n_tokens=20000000000"),
        client_rw.post("/api/v1/plans/", {"family": FAMILY, "budget": {"flops": 1e21}}, format="json"),
        client_rw.get("/api/v1/runs/999999/"),
    ]:
        assert "no-store" in response.headers["Cache-Control"], response.headers
        assert "private" in response.headers["Cache-Control"]


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_admin_login_locks_out_a_user_after_repeated_failures_even_with_the_right_password(
    django_user_model, team, settings
):
    staff_user("ada", team=team)
    staff_user("bob", team=team)
    attacker = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(attacker, "ada", "wrong").status_code == 200  # the form again, with its error
    assert _login(attacker, "ada", "wrong").status_code == 429  # the failure that reaches the limit locks

    locked = _login(attacker, "ada", PASSWORD)
    assert locked.status_code == 429
    assert not _logged_in(attacker)
    # Locked by username from another address, and by address for another user.
    elsewhere = Client()
    assert _login(elsewhere, "ada", PASSWORD, address="10.0.0.2").status_code == 429
    assert not _logged_in(elsewhere)
    assert _login(Client(), "bob", PASSWORD, address="10.0.0.1").status_code == 429

    call_command("axes_reset", verbosity=0)
    fresh = Client()
    assert _login(fresh, "ada", PASSWORD, address="10.0.0.3").status_code == 302
    assert _logged_in(fresh)


def test_a_forged_forwarded_for_header_does_not_escape_the_address_lockout(django_user_model, team, settings):
    staff_user("cy", team=team)
    for i in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            "/admin/login/",
            {"username": f"guess{i}", "password": "x"},
            REMOTE_ADDR="10.9.9.9",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}",
        )
    response = Client().post(
        "/admin/login/",
        {"username": "cy", "password": PASSWORD},
        REMOTE_ADDR="10.9.9.9",
        HTTP_X_FORWARDED_FOR="192.0.2.200",
    )
    assert response.status_code == 429
