"""Plans in the admin: the "Plan a run" form, the stored plan's page with its contour, re-running, scoping."""

from planner.models import Plan

ADD = "/admin/planner/plan/add/"


def _plan(client, team, family="kumar", **extra):
    data = {"family": f"{team.pk}:{family}", "law": "precision", "flops": "1e21", "cost_model": "linear_bits"}
    return client.post(ADD, {**data, **extra})


def test_plan_form_stores_a_plan_and_shows_it_next_to_the_baseline(alpha_member, alpha, alpha_fits):
    assert alpha_member.get(ADD).status_code == 200

    response = _plan(alpha_member, alpha, constraints='{"post_train_bits": 4}')

    assert response.status_code == 302
    plan = Plan.objects.get(team=alpha)
    assert plan.fit_id == alpha_fits[1].pk
    assert plan.constraints == {"post_train_bits": 4}
    page = alpha_member.get(response.url).content.decode()
    assert 'id="plan-comparison"' in page
    assert "16-bit baseline" in page
    assert 'id="plot-plan-contour"' in page
    assert "<svg" in page
    listing = alpha_member.get("/admin/planner/plan/").content.decode()
    assert "v2" in listing


def test_plan_form_reports_a_law_without_fit_and_a_missing_budget(alpha_member, alpha, alpha_fits):
    no_fit = _plan(alpha_member, alpha, law="fp")
    assert b"has no succeeded fp fit" in no_fit.content
    not_offered = _plan(alpha_member, alpha, family="nothing-here")
    assert b"Select a valid choice" in not_offered.content
    no_budget = _plan(alpha_member, alpha, flops="")
    assert b"Give exactly one of flops or gpu_hours" in no_budget.content
    assert not Plan.objects.exists()


def test_gpu_hours_need_hardware(alpha_member, alpha, alpha_fits):
    response = _plan(alpha_member, alpha, flops="", gpu_hours="1000")
    assert b"Required with gpu_hours" in response.content
    assert _plan(alpha_member, alpha, flops="", gpu_hours="1000", hardware="h100").status_code == 302


def test_rerun_makes_a_new_plan_on_the_current_fit(alpha_member, alpha, alpha_fits):
    _plan(alpha_member, alpha)
    first = Plan.objects.get()

    alpha_member.post("/admin/planner/plan/", {"action": "rerun_plans", "_selected_action": [str(first.pk)]})

    assert Plan.objects.count() == 2
    assert Plan.objects.exclude(pk=first.pk).get().fit_id == alpha_fits[1].pk


def test_other_team_cannot_see_plan_for_or_rerun_a_teams_plans(alpha_member, beta_member, alpha, alpha_fits):
    _plan(alpha_member, alpha)
    plan = Plan.objects.get()
    assert "kumar" not in beta_member.get("/admin/planner/plan/").content.decode()
    assert beta_member.get(f"/admin/planner/plan/{plan.pk}/change/").status_code == 302
    beta_member.post("/admin/planner/plan/", {"action": "rerun_plans", "_selected_action": [str(plan.pk)]})
    assert Plan.objects.count() == 1
    assert _plan(beta_member, alpha).status_code == 200  # alpha is not a choice for beta
    assert Plan.objects.count() == 1


def test_plan_form_checks_constraint_values_as_the_api_does(alpha_member, alpha, alpha_fits):
    # A value of the wrong type is refused by the form, as the API refuses it, before any arithmetic.
    response = _plan(alpha_member, alpha, constraints='{"post_train_bits": "\\u0000"}')
    assert response.status_code == 200
    assert b"post_train_bits" in response.content
    assert not Plan.objects.exists()
