"""The plan page's "Next runs to train" section: suggestions_for_plan on the plan's request, in the admin."""

import html
import re

import pytest

from fits.models import Fit
from planner import admin as planner_admin
from planner.api.serializers import SuggestionsSerializer
from planner.models import Plan
from planner.requests import budget_from
from planner.services import plan_create
from planner.suggestion_services import DEFAULT_EXPERIMENT_BUDGET_SHARE, suggestions_for_plan
from runs.admin_display import sci_label
from tests.factories import plan_request


def _body(plan, experiment_budget=None, max_suggestions=3):
    """The suggestions of a stored plan as the API shapes them."""
    budget = None if experiment_budget is None else budget_from(experiment_budget, section="experiment_budget")
    answer = suggestions_for_plan(plan=plan, experiment_budget=budget, max_suggestions=max_suggestions)
    return SuggestionsSerializer(answer).data


COLUMNS = [
    "rank",
    "n_params",
    "n_tokens",
    "tokens_per_param",
    "bits",
    "cost_flops",
    "cost_share",
    "predicted_loss",
    "predicted_loss_interval",
    "width",
    "narrowing",
]


def _url(plan: Plan) -> str:
    return f"/admin/planner/plan/{plan.pk}/change/"


def _cell(text: str) -> str:
    """A cell's exact value: the hover title of a short number (110M), else its text."""
    exact = re.fullmatch(r'<span class="exact" title="([^"]*)"[^>]*>[^<]*</span>', text.strip())
    return html.unescape(exact.group(1)).replace(",", "") if exact else html.unescape(text)


def _rows(page: str) -> list[dict[str, str]]:
    """The cells of the suggestions table, by column (short numbers by their exact value)."""
    table = re.search(r'<table id="suggestion-runs">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert table is not None, "no suggestions table on the page"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [
        dict(zip(COLUMNS, [_cell(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)], strict=True))
        for row in rows
    ]


def _agrees(page: str, body: dict) -> None:
    """Every row on the page is the service's suggestion of the same rank, to the page's printed precision."""
    rows = _rows(page)
    assert len(rows) == len(body["suggestions"]) > 0
    lo, hi = body["target_loss_interval"]
    for row, s in zip(rows, body["suggestions"], strict=True):
        assert int(row["rank"]) == s["rank"]
        assert float(row["n_params"]) == pytest.approx(s["n_params"], rel=1e-3)
        assert float(row["n_tokens"]) == pytest.approx(s["n_tokens"], rel=1e-3)
        assert row["bits"] == f"{s['weight_bits']:g}/{s['activation_bits']:g}/{s['kv_bits']:g}"
        assert float(row["cost_flops"]) == pytest.approx(s["cost_flops"], rel=5e-3)
        share = s["cost_flops"] / body["experiment_budget_flops"]
        assert float(row["cost_share"].rstrip("%")) / 100 == pytest.approx(share, abs=1e-3)
        assert float(row["predicted_loss"]) == pytest.approx(s["predicted_loss"], abs=1e-4)
        before, after = (float(v) for v in row["width"].split(" → "))
        assert before == pytest.approx(hi - lo, rel=1e-3)
        assert after == pytest.approx(s["expected_target_interval_width"], rel=1e-3)
    assert f"these runs cost {sci_label(body['total_cost_flops'])} (" in page
    assert f"{body['expected_narrowing']:.1%} narrower" in page


@pytest.fixture
def plan(alpha, alpha_fits) -> Plan:
    return plan_create(
        team=alpha,
        request=plan_request(
            family="kumar", budget={"flops": 1e21}, constraints={"post_train_bits": 4}, cost_model="linear_bits"
        ),
    )


def test_plan_page_shows_the_runs_the_suggestion_service_returns(alpha_member, plan):
    response = alpha_member.get(_url(plan))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Next runs to train" in page
    body = _body(plan)
    assert body["experiment_budget_flops"] == pytest.approx(plan.budget_flops * DEFAULT_EXPERIMENT_BUDGET_SHARE)
    _agrees(page, body)
    assert 'id="suggestion-error"' not in page


def test_experiment_budget_from_the_page_form(alpha_viewer, plan):
    response = alpha_viewer.get(_url(plan), {"experiment_flops": "2e18", "max_suggestions": "2"})

    assert response.status_code == 200
    body = _body(plan, experiment_budget={"flops": 2e18}, max_suggestions=2)
    assert len(body["suggestions"]) == 2
    _agrees(response.content.decode(), body)


def test_a_gpu_hours_plan_on_the_hardware_cost_model(alpha_member, alpha, alpha_fits):
    plan = plan_create(
        team=alpha,
        request=plan_request(family="kumar", budget={"gpu_hours": 5000, "hardware": "h100"}, cost_model="hardware"),
    )

    response = alpha_member.get(_url(plan))

    assert response.status_code == 200
    _agrees(response.content.decode(), _body(plan))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"experiment_flops": "lots"}, "Enter a number."),
        ({"experiment_flops": "-1e19"}, "Must be a positive number of FLOPs"),
        ({"experiment_flops": "inf"}, "Enter a number."),
        ({"experiment_flops": "1e19", "max_suggestions": "11"}, "less than or equal to 10"),
    ],
)
def test_a_bad_form_value_is_a_message_and_the_defaults_are_used(alpha_member, plan, query, message):
    response = alpha_member.get(_url(plan), query)

    assert response.status_code == 200
    page = response.content.decode()
    errors = re.search(r'<ul class="messagelist" id="suggestion-form-errors">(.*?)</ul>', page, re.S)
    assert errors is not None
    assert message in html.unescape(errors.group(1))
    _agrees(page, _body(plan))


def test_an_experiment_budget_too_small_for_any_run_shows_the_reason(alpha_member, plan):
    response = alpha_member.get(_url(plan), {"experiment_flops": "1e6"})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="suggestion-error"' in page
    assert "experiment_budget:" in page
    assert 'id="suggestion-runs"' not in page
    assert 'id="plan-comparison"' in page  # the rest of the plan page is still there


def test_a_family_without_a_succeeded_fit_any_more_shows_the_reason(alpha_member, plan):
    Fit.objects.filter(team=plan.team, family="kumar").update(status=Fit.Status.FAILED, error="diverged")

    response = alpha_member.get(_url(plan))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "No suggestions: The family 'kumar' has no succeeded precision fit yet." in page
    assert 'id="plot-plan-contour"' in page


def test_a_current_fit_without_bootstrap_draws_shows_the_reason(alpha_member, plan):
    Fit.objects.filter(pk=plan.fit_id).update(draws=b"", draw_names=[])

    response = alpha_member.get(_url(plan))

    assert response.status_code == 200
    assert "has no bootstrap draws to compare" in html.unescape(response.content.decode())


def test_a_plan_request_the_current_fit_refuses_shows_the_reason(alpha_member, plan):
    stored = Plan.objects.filter(pk=plan.pk)
    stored.update(constraints={**plan.constraints, "weight_bits": 0.5})  # outside the fitted law's domain

    response = alpha_member.get(_url(plan))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "No suggestions: constraints: weight_bits: 0.5 bits lies outside the fitted law's domain." in page


def test_suggestions_follow_the_current_fit_and_say_so(alpha_member, alpha, alpha_fits):
    v1, v2 = alpha_fits
    plan = plan_create(team=alpha, request=plan_request(family="kumar", budget={"flops": 1e21}))
    Plan.objects.filter(pk=plan.pk).update(fit=v1)  # as if planned before v2 was published

    page = alpha_member.get(_url(plan)).content.decode()

    assert f"/admin/fits/fit/{v2.pk}/change/" in page
    assert "the current fit; this plan was made on" in page


def test_another_teams_plan_page_redirects_without_computing_suggestions(beta_member, plan, monkeypatch):
    calls = []
    monkeypatch.setattr(planner_admin, "suggestions_for_plan", lambda **kwargs: calls.append(kwargs))

    response = beta_member.get(_url(plan), {"experiment_flops": "1e19"})

    assert response.status_code == 302
    assert "Next runs to train" not in beta_member.get(response.url).content.decode()
    assert calls == []
