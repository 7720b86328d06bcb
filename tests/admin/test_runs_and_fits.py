"""Runs (exclude with a reason, re-include, CSV export), API keys and the fit review page in the admin."""

from runs.models import ApiKey, FamilyChange, Run
from runs.services import api_key_digest
from tests.admin.pages import fit_page_with_plots
from tests.factories import logged_in, staff_user

RUNS = "/admin/runs/run/"


def _post_action(client, action, ids, **extra):
    return client.post(RUNS, {"action": action, "_selected_action": [str(i) for i in ids], **extra})


def test_exclude_asks_for_a_reason_then_excludes_and_marks_a_refit(alpha_member, alpha, alpha_runs):
    ids = [run.pk for run in alpha_runs[:3]]

    form = _post_action(alpha_member, "exclude_runs", ids)
    assert form.status_code == 200
    assert b'name="reason"' in form.content
    missing = _post_action(alpha_member, "exclude_runs", ids, apply="1", reason="  ")
    assert b"This field is required" in missing.content
    assert not Run.objects.filter(pk__in=ids, excluded=True).exists()

    done = _post_action(alpha_member, "exclude_runs", ids, apply="1", reason="diverged at step 9k")

    assert done.status_code == 302
    assert set(Run.objects.filter(pk__in=ids).values_list("excluded", "exclusion_reason")) == {
        (True, "diverged at step 9k")
    }
    change = FamilyChange.objects.get(team=alpha, family="kumar")
    assert change.pending_since is not None  # run_update marked the family for a refit


def test_reinclude_clears_the_reason_and_marks_a_refit(alpha_member, alpha, alpha_runs):
    run = alpha_runs[0]
    Run.objects.filter(pk=run.pk).update(excluded=True, exclusion_reason="spike")

    _post_action(alpha_member, "include_runs", [run.pk])

    run.refresh_from_db()
    assert (run.excluded, run.exclusion_reason) == (False, "")
    assert FamilyChange.objects.get(team=alpha, family="kumar").pending_since is not None


def test_change_form_edits_exclusion_through_the_service(alpha_member, alpha_runs):
    run = alpha_runs[1]
    url = f"{RUNS}{run.pk}/change/"
    form = {
        "name": run.name,
        "excluded": "on",
        "exclusion_reason": "",
        "evaluations-TOTAL_FORMS": "0",
        "evaluations-INITIAL_FORMS": "0",
    }
    assert alpha_member.post(url, form).status_code == 200  # reason missing: shown again
    assert alpha_member.post(url, {**form, "exclusion_reason": "bad eval set"}).status_code == 302
    run.refresh_from_db()
    assert run.excluded
    assert run.exclusion_reason == "bad eval set"


def test_filters_and_search(alpha_member, alpha_runs):
    page = alpha_member.get(RUNS, {"weight_bits": "4.0", "family": "kumar"})
    assert page.status_code == 200
    shown = page.context["cl"].result_list
    assert shown
    assert all(run.weight_bits == 4.0 for run in shown)
    found = alpha_member.get(RUNS, {"q": "alpha-0007"}).context["cl"].result_list
    assert [run.external_id for run in found] == ["alpha-0007"]
    for name in ("family", "status", "excluded", "number_format", "activation_bits", "kv_bits"):
        assert f"?{name}" in page.content.decode() or f"&amp;{name}" in page.content.decode(), name


def test_export_streams_the_selection_with_evaluations(alpha_member, alpha_runs):
    chosen = [run for run in alpha_runs if run.weight_bits == 16 and run.activation_bits == 16][:2]
    response = _post_action(alpha_member, "export_csv", [run.pk for run in chosen])
    assert response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert {line.split(",")[0] for line in lines[1:]} == {str(run.pk) for run in chosen}
    assert len(lines) - 1 == sum(max(1, run.evaluations.count()) for run in chosen)


def test_api_key_is_shown_once_then_revoked(alpha_member, alpha):
    created = alpha_member.post(
        "/admin/runs/apikey/add/", {"team": alpha.pk, "label": "trainer", "read_only": ""}, follow=True
    )
    message = next(str(m) for m in created.context["messages"])
    secret = message.split(": ")[1].split(" ")[0]
    key = ApiKey.objects.get(label="trainer")
    assert key.digest == api_key_digest(secret)
    assert secret not in key.prefix + key.digest
    listing = alpha_member.get("/admin/runs/apikey/").content.decode()
    assert "last used" in listing.lower()
    assert secret not in listing

    alpha_member.post("/admin/runs/apikey/", {"action": "revoke_keys", "_selected_action": [str(key.pk)]})

    key.refresh_from_db()
    assert key.revoked_at is not None


def test_fit_page_shows_intervals_fixed_metrics_diff_and_plots(alpha_member, alpha_fits):
    _, v2 = alpha_fits
    page = alpha_member.get(f"/admin/fits/fit/{v2.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'id="fit-params"' in body
    assert "gamma_w" in body
    assert "97.5%" in body
    assert 'id="fit-fixed"' in body
    assert "n_post" in body
    assert "r2" in body
    assert "rmse_log" in body
    assert "n_held_out" in body
    diff = page.context["diff"]
    assert diff.runs_added == 24
    assert diff.removed_excluded == 1
    assert "alpha " in diff.summary()
    assert "→" in diff.summary()
    assert "−1 excluded" in diff.summary()
    for key in ("observed-vs-predicted", "residuals", "loss-vs-bits", "effective-params", "ptq", "density"):
        assert f'id="plot-{key}"' in body
    assert fit_page_with_plots(alpha_member, v2.pk).count("<svg") >= 6


def test_fit_page_first_version_has_no_diff(alpha_member, alpha_fits):
    v1, _ = alpha_fits
    page = alpha_member.get(f"/admin/fits/fit/{v1.pk}/change/")
    assert page.context["diff"] is None
    assert "First succeeded version" in page.content.decode()


def test_an_action_on_a_selection_that_is_not_row_ids_does_nothing(alpha_member, alpha, alpha_runs):
    # Django's admin filters on whatever ids are posted: anything but integers is refused before that, on every
    # admin list (Django's own user and group lists too).
    for ids in (["abc"], ["\x00"], [str(alpha_runs[0].pk), "²"]):
        response = _post_action(alpha_member, "exclude_runs", ids, apply="1", reason="x")
        assert response.status_code == 400
        assert b"_selected_action: the selection is not a list of row ids" in response.content
    assert not Run.objects.filter(excluded=True).exists()
    assert _post_action(alpha_member, "delete_selected", ["abc"]).status_code == 400
    assert Run.objects.count() == len(alpha_runs)
    root = logged_in(staff_user("root", team=alpha, is_superuser=True))
    for url in ("/admin/auth/user/", "/admin/auth/group/", "/admin/axes/accessattempt/"):
        assert root.post(url, {"action": "delete_selected", "_selected_action": ["abc"]}).status_code == 400


def test_a_key_form_posted_with_a_team_that_is_not_an_id_shows_the_error(alpha_member, alpha):
    # Django's autocomplete widget filters teams on the posted value to redraw it: only ids may reach it.
    for value in ("abc", "1e400", "\x00", "²"):
        response = alpha_member.post("/admin/runs/apikey/add/", {"team": value, "label": "k"})
        assert response.status_code == 200, value
        assert b"errorlist" in response.content
    assert not ApiKey.objects.exists()
    done = alpha_member.post("/admin/runs/apikey/add/", {"team": alpha.pk, "label": "k"})
    assert done.status_code == 302
    assert ApiKey.objects.filter(team=alpha, label="k").exists()
