"""Every admin add and change form, posted with odd values one field at a time, answers without a 5xx.

The fields are read from each rendered form, so a new admin page is covered without naming it here. The values
are the ones a form must stop before the database or Python's number parsing sees them (an id that is not one,
NUL, a number past a double's range); a member and a superuser each post them (their forms differ by scope).
"""

import re

import pytest
from django.contrib import admin
from django.db.models import Model

from planner.services import plan_create
from tests.factories import logged_in, plan_request, staff_user

ODD_VALUES = ["abc", "\x00", "1e400"]
pytestmark = pytest.mark.django_db


def _form_urls(model: type[Model]) -> list[str]:
    meta = model._meta
    base = f"/admin/{meta.app_label}/{meta.model_name}/"
    first = model._default_manager.order_by("pk").first()
    return [f"{base}add/"] + ([f"{base}{first.pk}/change/"] if first is not None else [])


def test_no_admin_form_answers_a_server_error(alpha_member, alpha, alpha_fits, alpha_runs):
    plan_create(team=alpha, request=plan_request(family="kumar", law="precision", budget={"flops": 1e21}))
    superuser = logged_in(staff_user("root", team=alpha, is_superuser=True))
    failures, posted = [], 0
    for who, client in (("member", alpha_member), ("superuser", superuser)):
        client.raise_request_exception = False
        for model in admin.site._registry:
            for url in _form_urls(model):
                page = client.get(url)
                assert page.status_code < 500, (who, url)
                if page.status_code != 200:
                    continue  # not allowed for this user: a redirect or 403
                names = set(re.findall(r'name="([a-z_][a-z0-9_-]*)"', page.content.decode())) - {"csrfmiddlewaretoken"}
                for name in sorted(names):
                    for value in ODD_VALUES:
                        posted += 1
                        if client.post(url, {name: value}).status_code >= 500:
                            failures.append((who, url, name, value))
    assert posted > 100  # the forms were found and posted
    assert failures == []
