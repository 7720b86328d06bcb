"""Fits and plans of the floating-point law (Sun et al., law "fp") in the admin."""

import re

import pytest

from fits.laws import FitResult, fit_law, fp_synthetic
from planner.services import plan_create
from runs.models import Team
from tests.admin.pages import fit_page_with_plots
from tests.factories import N_BOOTSTRAP, FitFactory, plan_request, runs_from_observations


@pytest.fixture(scope="session")
def fp_fit() -> FitResult:
    return fit_law("fp", fp_synthetic(seed=2), n_bootstrap=N_BOOTSTRAP, seed=1)


@pytest.fixture
def alpha_fp(alpha: Team, fp_fit: FitResult):
    runs_from_observations(alpha, fp_synthetic(seed=2), family="fp-sweep", prefix="fp")
    return FitFactory.create(team=alpha, result=fp_fit, family="fp-sweep", version=1, of_current_runs=True)


def test_the_fit_page_of_an_fp_fit_renders_its_plots(alpha_member, alpha_fp):
    page = fit_page_with_plots(alpha_member, alpha_fp.pk)
    assert "The fp law has no N_eff" in page
    assert "best E/M split" in page  # the loss-vs-bits plot of the weights' width, at the law's best layout
    assert "No run with a defined density" not in page  # density against bf16 (E8M7)


def test_a_plan_on_the_fp_law_shows_its_format(alpha_member, alpha, alpha_fp):
    plan = plan_create(team=alpha, request=plan_request(family="fp-sweep", law="fp", budget={"flops": 1e22}))
    page = alpha_member.get(f"/admin/planner/plan/{plan.pk}/change/").content.decode()

    rows = dict(re.findall(r"<td>([^<]+ \(fp format\))</td><td class=\"num\">([^<]+)</td>", page))
    assert rows == {
        "exponent bits (fp format)": str(plan.recommendation["exponent_bits"]),
        "mantissa bits (fp format)": str(plan.recommendation["mantissa_bits"]),
    }
