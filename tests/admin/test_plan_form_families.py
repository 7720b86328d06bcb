"""The "Plan a run" form offers each of the user's teams' families with a succeeded fit, grouped by team, so a
family can never be asked of a team it does not belong to."""

import re

from django.contrib.auth import get_user_model

from planner.models import Plan
from runs.models import Membership
from tests.factories import PASSWORD, FitFactory, logged_in, staff_user

ADD = "/admin/planner/plan/add/"


def _groups(page: str) -> dict[str, list[str]]:
    """{optgroup label: option values} of the family select."""
    select = re.search(r'<select name="family"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    return {
        label: re.findall(r'<option value="([^"]+)"', options)
        for label, options in re.findall(r'<optgroup label="([^"]+)">(.*?)</optgroup>', select.group(1), re.S)
    }


def test_families_are_listed_per_team_with_their_laws(alpha, beta, alpha_fits, alpha_runs):
    FitFactory.create(team=beta, family="secret-sweep")
    FitFactory.create(team=alpha, family="kumar", law="chinchilla")
    both = staff_user("ada2", team=alpha, role="member")
    Membership.objects.create(user=both, team=beta, role="member")

    page = logged_in(both).get(ADD).content.decode()

    assert _groups(page) == {"Alpha Lab (alpha)": [f"{alpha.pk}:kumar"], "Beta Lab (beta)": [f"{beta.pk}:secret-sweep"]}
    assert "kumar (chinchilla, precision)" in page


def test_a_superuser_sees_only_their_own_teams_families(alpha, beta, alpha_fits):
    FitFactory.create(team=beta, family="sweep1")
    root = get_user_model().objects.create_superuser(username="demo", password=PASSWORD, email="")
    Membership.objects.create(user=root, team=alpha, role="owner")

    page = logged_in(root).get(ADD).content.decode()

    assert _groups(page) == {"Alpha Lab (alpha)": [f"{alpha.pk}:kumar"]}
    assert "sweep1" not in page


def test_a_superuser_of_no_team_sees_every_teams_families_by_team(superuser, alpha, beta, alpha_fits):
    FitFactory.create(team=beta, family="sweep1")

    groups = _groups(superuser.get(ADD).content.decode())

    assert groups == {"Alpha Lab (alpha)": [f"{alpha.pk}:kumar"], "Beta Lab (beta)": [f"{beta.pk}:sweep1"]}


def test_another_teams_family_cannot_be_posted(alpha_member, alpha, beta, alpha_fits):
    FitFactory.create(team=beta, family="sweep1")

    for value in (f"{beta.pk}:sweep1", f"{alpha.pk}:sweep1", "kumar", f"{beta.pk}:kumar"):
        body = {"family": value, "law": "auto", "flops": "1e21", "cost_model": "linear_bits"}
        response = alpha_member.post(ADD, body)
        assert response.status_code == 200, value
        assert "Select a valid choice" in response.content.decode()
    assert not Plan.objects.exists()


def test_the_only_family_is_chosen_and_planning_works(alpha_member, alpha, alpha_fits):
    page = alpha_member.get(ADD).content.decode()
    assert f'<option value="{alpha.pk}:kumar" selected>' in page

    response = alpha_member.post(
        ADD, {"family": f"{alpha.pk}:kumar", "law": "auto", "flops": "1e21", "cost_model": "linear_bits"}
    )

    assert response.status_code == 302
    assert Plan.objects.get().family == "kumar"


def test_no_family_with_a_fit_says_why(alpha_member, alpha_runs):
    page = " ".join(alpha_member.get(ADD).content.decode().split())
    assert 'id="plan-no-families"' in page
    assert "fits appear a minute or two after runs are logged" in page


def test_the_plans_contour_is_drawn_when_it_is_planned(alpha_member, alpha, alpha_fits, monkeypatch):
    from django.core.cache import cache

    from planner import admin as planner_admin

    cache.clear()
    response = alpha_member.post(
        ADD, {"family": f"{alpha.pk}:kumar", "law": "auto", "flops": "1e21", "cost_model": "linear_bits"}
    )
    assert response.status_code == 302

    def refuse(**kwargs):
        raise AssertionError("the plan page must not draw the contour again")

    monkeypatch.setattr(planner_admin, "plan_contour_svg", refuse)
    page = alpha_member.get(response.url)
    assert page.status_code == 200
    assert 'id="plot-plan-contour"><svg' in page.content.decode().replace("\n", "")
