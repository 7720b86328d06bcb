"""A query string holding the NUL character: PostgreSQL cannot compare text with it, so a list filter on it would
fail its query. It is a 400 naming the parameter, everywhere."""

import pytest
from django.contrib import admin

from runs.models import Team
from tests.factories import logged_in, staff_user

pytestmark = pytest.mark.django_db

FILTERS = ["family", "status__exact", "law__exact", "q", "o"]


def test_no_admin_list_fails_on_nul_in_a_filter():
    team = Team.objects.create(slug="t", name="T")
    client = logged_in(staff_user("admin", team=team, is_superuser=True))
    lists = [f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry]
    assert "/admin/runs/run/" in lists
    for url in lists:
        assert client.get(url).status_code == 200, url
        for name in FILTERS:
            response = client.get(url, {name: "a\x00b"})
            assert response.status_code == 400, (url, name, response.status_code)
            assert name in response.content.decode()


def test_an_api_filter_with_nul_is_a_400_naming_it(client_rw):
    response = client_rw.get("/api/v1/runs/", {"family": "a\x00b"})
    assert response.status_code == 400
    assert response.json() == {"errors": {"family": ["Must not contain the NUL character (\\u0000)."]}}
