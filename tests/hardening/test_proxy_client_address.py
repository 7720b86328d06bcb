"""Behind compose's nginx (DJANGO_TRUSTED_PROXY_COUNT=1) the login lockout counts each client by the address nginx
saw, not nginx's own address: one guessing client locks out itself, not everybody, and cannot pick an address."""

import pytest
from django.test import Client

from tests.factories import PASSWORD, staff_user

pytestmark = pytest.mark.django_db
NGINX = "172.18.0.5"  # REMOTE_ADDR of every request that comes through the proxy


def _login(username: str, password: str, forwarded_for: str):
    return Client().post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=NGINX,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_a_guessing_client_behind_the_proxy_locks_out_only_its_own_address(team, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    staff_user("ada", team=team)
    for i in range(settings.AXES_FAILURE_LIMIT):
        # The client writes an X-Forwarded-For of its own each time; nginx appends the address it saw.
        _login(f"guess{i}", "wrong", forwarded_for=f"192.0.2.{i}, 198.51.100.7")
    assert _login("ada", PASSWORD, forwarded_for="192.0.2.250, 198.51.100.7").status_code == 429
    assert _login("ada", PASSWORD, forwarded_for="203.0.113.9").status_code == 302  # another client logs in


def test_without_a_trusted_proxy_forwarded_for_is_ignored(team, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    staff_user("ada", team=team)
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(f"guess{i}", "wrong", forwarded_for=f"198.51.100.{i}")
    assert _login("ada", PASSWORD, forwarded_for="203.0.113.9").status_code == 429  # all from NGINX's address
