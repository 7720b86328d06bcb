"""Team scoping in the admin: a member of another team sees nothing of the first, by any door."""

import pytest

from fits.models import Fit
from runs.models import ApiKey, Membership, Run
from runs.services import api_key_create
from tests.factories import staff_user

RUNS = "/admin/runs/run/"
FITS = "/admin/fits/fit/"


def _post_action(client, url, action, ids, **extra):
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids], **extra})


def test_member_lists_only_their_teams_runs(alpha_member, alpha_runs, beta_runs):
    page = alpha_member.get(RUNS, {"q": "alpha-0001"})
    body = page.content.decode()
    assert page.status_code == 200
    assert "alpha run 1" in body
    assert "beta run" not in body
    assert "secret-sweep" not in body


def test_member_of_other_team_sees_no_run_in_list_filters_or_search(beta_member, alpha_runs, beta_runs):
    page = beta_member.get(RUNS)
    body = page.content.decode()
    assert page.status_code == 200
    assert "alpha" not in body.lower().replace("alphabet", "")
    assert "Alpha Lab" not in body
    assert "kumar" not in body
    assert "alpha run" not in beta_member.get(RUNS, {"q": "alpha-0001"}).content.decode()


def test_detail_by_url_of_another_teams_run_redirects_without_data(beta_member, alpha_runs):
    run = alpha_runs[5]
    for url in (f"{RUNS}{run.pk}/change/", f"{RUNS}{run.pk}/history/", f"{RUNS}{run.pk}/delete/"):
        response = beta_member.get(url)
        assert response.status_code == 302, url
        assert run.name not in beta_member.get(response.url).content.decode()


def test_detail_by_url_of_another_teams_fit_and_key_redirects(beta_member, alpha, alpha_fits):
    key, _ = api_key_create(team=alpha, label="alpha ci key")
    for url in (
        f"{FITS}{alpha_fits[1].pk}/change/",
        f"/admin/runs/apikey/{key.pk}/change/",
        f"/admin/runs/team/{alpha.pk}/change/",
    ):
        assert beta_member.get(url).status_code == 302, url
    assert "alpha ci key" not in beta_member.get("/admin/runs/apikey/").content.decode()
    assert "kumar" not in beta_member.get(FITS).content.decode()


def test_actions_on_another_teams_runs_change_nothing(beta_member, alpha_runs, beta_runs):
    ids = [run.pk for run in alpha_runs[:5]]
    _post_action(beta_member, RUNS, "exclude_runs", ids, apply="1", reason="sabotage")
    _post_action(beta_member, RUNS, "delete_selected", ids, post="yes")
    assert Run.objects.filter(pk__in=ids, excluded=False).count() == 5


def test_export_of_another_teams_runs_is_empty(beta_member, alpha_runs, beta_runs):
    ids = [run.pk for run in alpha_runs[:5]] + [beta_runs[0].pk]
    response = _post_action(beta_member, RUNS, "export_csv", ids)
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,external_id")
    assert [line.split(",")[0] for line in lines[1:]] == [str(beta_runs[0].pk)] * len(lines[1:])
    assert "alpha" not in "\n".join(lines)


def test_select_all_across_pages_stays_in_the_team(beta_member, alpha_runs, beta_runs):
    response = beta_member.post(
        RUNS, {"action": "export_csv", "select_across": "1", "index": "0", "_selected_action": [str(beta_runs[0].pk)]}
    )
    text = b"".join(response.streaming_content).decode()
    assert "beta-0000" in text
    assert "alpha-" not in text


def test_autocomplete_lists_only_member_teams(beta_member, alpha, beta):
    response = beta_member.get(
        "/admin/autocomplete/",
        {"app_label": "runs", "model_name": "membership", "field_name": "team", "term": ""},
    )
    assert response.status_code == 200
    slugs = [item["text"] for item in response.json()["results"]]
    assert slugs == ["Beta Lab"]


def test_team_choices_on_the_key_form_are_the_users_teams(beta_member, alpha, beta):
    body = beta_member.get("/admin/runs/apikey/add/").content.decode()
    assert "Alpha Lab" not in body
    response = beta_member.post("/admin/runs/apikey/add/", {"team": alpha.pk, "label": "sneaky", "read_only": ""})
    assert response.status_code == 200  # the form is shown again with an error
    assert not ApiKey.objects.filter(label="sneaky").exists()


def test_superuser_sees_every_team(superuser, alpha_runs, beta_runs, alpha_fits):
    body = superuser.get(RUNS).content.decode()
    assert "Alpha Lab" in body
    assert "Beta Lab" in body
    assert superuser.get(f"{RUNS}{beta_runs[0].pk}/change/").status_code == 200
    assert superuser.get(f"{FITS}{alpha_fits[1].pk}/change/").status_code == 200


def test_staff_without_membership_sees_no_app(login, alpha_runs):
    client = login(staff_user("lurker"))
    assert "/admin/runs/" not in client.get("/admin/").content.decode()
    assert client.get(RUNS).status_code == 403


def test_viewer_can_look_but_not_exclude(alpha_viewer, alpha_runs):
    page = alpha_viewer.get(RUNS)
    assert page.status_code == 200
    assert "exclude_runs" not in page.content.decode()
    assert "export_csv" in page.content.decode()
    _post_action(alpha_viewer, RUNS, "exclude_runs", [alpha_runs[0].pk], apply="1", reason="no")
    assert not Run.objects.get(pk=alpha_runs[0].pk).excluded


def test_only_owners_manage_memberships(alpha_member, alpha_owner, alpha, django_user_model):
    newcomer = django_user_model.objects.create_user(username="nia", password="x")
    data = {"user": newcomer.pk, "team": alpha.pk, "role": "viewer"}
    alpha_member.post("/admin/runs/membership/add/", data)
    assert not Membership.objects.filter(user=newcomer).exists()
    response = alpha_owner.post("/admin/runs/membership/add/", data)
    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer).role == "viewer"


@pytest.mark.parametrize("url", [RUNS, FITS, "/admin/runs/apikey/", "/admin/runs/membership/", "/admin/runs/team/"])
def test_every_list_hides_the_other_team(beta_member, alpha, alpha_fits, url):
    api_key_create(team=alpha, label="alpha-only")
    body = beta_member.get(url).content.decode()
    assert "Alpha Lab" not in body
    assert "alpha-only" not in body
    assert "ada" not in body
    assert Fit.objects.filter(team=alpha).exists()


def test_a_filter_the_list_cannot_show_is_refused_and_select_all_deletes_nothing(beta_member, alpha, beta, beta_runs):
    # A one-team user's team filter is hidden (one choice); Django would drop its parameter and list every run.
    url = f"{RUNS}?team__id__exact={alpha.pk}"
    page = beta_member.get(url)
    assert page.status_code == 302
    assert page.url.endswith("?e=1")
    shown = beta_member.get(page.url)
    assert "cannot filter by team__id__exact" in shown.content.decode()

    action = {"action": "delete_selected", "select_across": "1", "index": "0", "post": "yes"}
    beta_member.post(url, {**action, "_selected_action": [str(beta_runs[0].pk)]})
    assert Run.objects.filter(team=beta).count() == len(beta_runs)

    key, _ = api_key_create(team=beta, label="kept")
    beta_member.post(
        f"/admin/runs/apikey/?team__id__exact={alpha.pk}",
        {"action": "revoke_keys", "select_across": "1", "index": "0", "_selected_action": [str(key.pk)]},
    )
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_filter_the_list_shows_still_applies_with_select_all(superuser, alpha, beta, alpha_runs, beta_runs):
    # Two teams present: the team filter is shown and "select all" acts on the filtered list only.
    action = {"action": "delete_selected", "select_across": "1", "index": "0", "post": "yes"}
    superuser.post(f"{RUNS}?team__id__exact={beta.pk}", {**action, "_selected_action": [str(beta_runs[0].pk)]})
    assert Run.objects.filter(team=beta).count() == 0
    assert Run.objects.filter(team=alpha).count() == len(alpha_runs)
