"""The fit page names the runs the screening rule left out, links them, and the residual plot marks them."""

from dataclasses import replace

from fits.selectors import fit_data
from tests.admin.pages import fit_page_with_plots
from tests.factories import FitFactory


def test_the_fit_page_lists_and_marks_the_screened_runs(alpha, alpha_runs, alpha_member, kumar_fit):
    # given a fit whose screening rule left out one run of its snapshot
    run_ids = fit_data(team_id=alpha.pk, family="kumar").run_ids
    entry = {
        "index": 3,
        "run_id": run_ids[3],
        "n_params": 3e7,
        "n_tokens": 1.5e9,
        "final_loss": 4.2,
        "residual": -0.08,
        "robust_z": -9.1,
        "check": "residual",
        "reason": "loss 8.3% above the law (robust z -9.1)",
    }
    fit = FitFactory.create(
        team=alpha, family="kumar", result=replace(kumar_fit, screened=[entry]), version=1, of_current_runs=True
    )

    # when a member opens it
    page = fit_page_with_plots(alpha_member, fit.pk)

    # then the run is listed with its reason and a link to it, and the residual plot marks it
    table = page[page.index('id="fit-screened"') :]
    assert f"/admin/runs/run/{run_ids[3]}/change/" in table
    assert "loss 8.3% above the law" in table
    residuals = page[page.index('id="plot-residuals"') :]
    assert "left out by the screening rule (1)" in residuals[: residuals.index("</figure>")]


def test_a_fit_without_screened_runs_says_so_and_marks_nothing(alpha, alpha_runs, alpha_member, kumar_fit):
    fit = FitFactory.create(team=alpha, family="kumar", result=kumar_fit, version=1, of_current_runs=True)
    page = fit_page_with_plots(alpha_member, fit.pk)
    assert 'id="fit-screened-none"' in page
    assert "left out by the screening rule (" not in page
