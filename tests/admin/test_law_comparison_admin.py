"""Law comparison in the admin: the fit page ranks the family's laws, the plan page shows its law choice."""

import html
import re
from dataclasses import replace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fits import density_selectors
from fits.admin import fit_density_plot
from fits.laws import FitResult, Observations, fit_law
from fits.models import Fit
from fits.review import law_comparison
from fits.selectors import law_ranking
from planner.models import Plan
from planner.services import plan_create
from runs.models import Run, Team
from tests.factories import N_BOOTSTRAP, FitFactory, RunFactory, plan_request, runs_from_observations
from tests.published import EPOCH


def _fit_url(fit_id: int) -> str:
    return f"/admin/fits/fit/{fit_id}/change/"


def _plan_url(plan: Plan) -> str:
    return f"/admin/planner/plan/{plan.pk}/change/"


def _comparison_rows(page: str) -> list[dict[str, str]]:
    """The law comparison table of a fit page: per row its law, classes, link and cells (text, unescaped)."""
    table = re.search(r'<table id="law-comparison-table">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert table is not None, "no law comparison table on the page"
    rows = []
    for classes, law, body in re.findall(r'<tr class="([^"]*)" data-law="([^"]*)">(.*?)</tr>', table.group(1), re.S):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
        ]
        link = re.search(r'<a href="([^"]+)"', body)
        rows.append(
            {
                "law": law,
                "classes": classes,
                "url": link.group(1) if link else "",
                "rank": cells[0],
                "score": cells[2],
                "held_out": cells[3],
                "runs": cells[5],
                "verdict": cells[6],
                "eligible": cells[7],
            }
        )
    return rows


@pytest.fixture(scope="session")
def chinchilla_fit(kumar_data: Observations) -> FitResult:
    return fit_law("chinchilla", kumar_data, n_bootstrap=N_BOOTSTRAP, seed=1)


@pytest.fixture
def alpha_laws(alpha: Team, alpha_fits: tuple[Fit, Fit], alpha_runs: list[Run], chinchilla_fit: FitResult) -> dict:
    """Alpha's "kumar" family with three laws: precision (v1, v2), chinchilla, and an fp fit covering only part of
    the runs with the lowest score (ranked, but not eligible to be the best)."""
    chinchilla = FitFactory.create(team=alpha, result=chinchilla_fit, family="kumar", version=1, of_current_runs=True)
    some = [run.pk for run in alpha_runs[:40]]
    fp_like = replace(
        chinchilla_fit,
        law="fp",
        metrics={**chinchilla_fit.metrics, "n_runs": len(some)},
        backtest={"rmse_log_runs": 1e-6, "n_held_out_runs": 4},
    )
    fp = FitFactory.create(team=alpha, result=fp_like, family="kumar", version=1, of_current_runs=True, run_ids=some)
    return {"precision_v1": alpha_fits[0], "precision": alpha_fits[1], "chinchilla": chinchilla, "fp": fp}


@pytest.fixture
def beta_kumar(beta: Team, kumar_data: Observations, chinchilla_fit: FitResult) -> Fit:
    """Beta's own family also named "kumar", with a chinchilla fit whose score would rank first anywhere."""
    runs_from_observations(beta, kumar_data, family="kumar", prefix="beta-kumar")
    result = replace(chinchilla_fit, backtest={**chinchilla_fit.backtest, "rmse_log_runs": 1e-9})
    return FitFactory.create(team=beta, result=result, family="kumar", version=1, of_current_runs=True)


def test_fit_page_lists_every_law_of_the_family_in_ranking_order_with_scores(alpha_member, alpha, alpha_laws):
    ranking = law_ranking(team=alpha, family="kumar").ranking

    page = alpha_member.get(_fit_url(alpha_laws["precision"].pk)).content.decode()

    rows = _comparison_rows(page)
    assert len(rows) == 3
    assert [r["law"] for r in rows] == [e.law for e in ranking.entries]
    for row, entry in zip(rows, ranking.entries, strict=True):
        assert row["score"] == f"{entry.score:.4g}"
        assert row["rank"] == str(entry.rank)
        assert row["held_out"] == str(entry.n_held_out_runs)
        assert row["runs"] == str(entry.n_runs_covered)  # fitted plus screened: what eligibility compares
        assert row["url"] == _fit_url(entry.fit_id)
        assert row["eligible"].startswith("yes" if entry.eligible else "no")
    assert rows[0]["law"] == "fp"  # the lowest score, on fewer runs: ranked first, not the best
    assert "not eligible as the best law" in rows[0]["eligible"]
    assert ranking.best not in (None, "fp")
    assert [r["law"] for r in rows if "best-law" in r["classes"]] == [ranking.best]
    assert [r["law"] for r in rows if "page-law" in r["classes"]] == ["precision"]
    assert "Law comparison for this family" in page


def test_an_older_version_says_the_comparison_uses_the_current_one(alpha_member, alpha_laws):
    page = alpha_member.get(_fit_url(alpha_laws["precision_v1"].pk)).content.decode()

    assert "the comparison uses the current version" in page
    precision = next(r for r in _comparison_rows(page) if r["law"] == "precision")
    assert precision["url"] == _fit_url(alpha_laws["precision"].pk)


def test_the_comparison_reads_two_queries_and_no_draws(alpha_laws):
    fit = Fit.objects.select_related("team").without_blobs().get(pk=alpha_laws["precision"].pk)

    with CaptureQueriesContext(connection) as queries:
        comparison = law_comparison(fit=fit)

    assert len(queries) == 2
    assert not any('"draws"' in q["sql"] or '"snapshot"' in q["sql"] for q in queries.captured_queries)
    assert len(comparison.rows) == 3


def test_another_teams_same_named_family_never_appears(alpha_member, beta_member, alpha_laws, beta_kumar):
    alpha_page = alpha_member.get(_fit_url(alpha_laws["precision"].pk)).content.decode()
    beta_page = beta_member.get(_fit_url(beta_kumar.pk)).content.decode()

    assert _fit_url(beta_kumar.pk) not in alpha_page
    assert {r["url"] for r in _comparison_rows(alpha_page)} == {
        _fit_url(alpha_laws[law].pk) for law in ("precision", "chinchilla", "fp")
    }
    assert [(r["law"], r["url"]) for r in _comparison_rows(beta_page)] == [("chinchilla", _fit_url(beta_kumar.pk))]
    assert beta_member.get(_fit_url(alpha_laws["precision"].pk)).status_code == 302  # not beta's fit


def test_plan_page_shows_the_law_selection_and_its_ranking(alpha_member, alpha, alpha_laws):
    plan = plan_create(team=alpha, request=plan_request(family="kumar", budget={"flops": 1e21}))
    selection = plan.law_selection

    page = alpha_member.get(_plan_url(plan)).content.decode()

    assert selection is not None
    assert selection["requested"] == "auto"
    assert 'id="plan-law-selection"' in page
    assert html.escape(selection["reason"]) in page
    assert "auto (the best-ranked law that can serve this request)" in page
    ranking = re.search(r'<table id="plan-law-ranking">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert ranking is not None
    assert re.findall(r'<a href="[^"]+">(\w+) v\d+</a>', ranking.group(1)) == [e["law"] for e in selection["ranking"]]
    used = re.search(r'<tr class="used-law">.*?<a href="[^"]+">(\w+) v\d+</a> \(used\)', ranking.group(1), re.S)
    assert used is not None
    assert used.group(1) == selection["used"] == plan.law
    # What each score was measured on, as stored with the plan.
    bases = re.findall(r'<td class="plan-law-basis">(.*?)</td>', ranking.group(1))
    held = [e.get("n_held_out_runs") for e in selection["ranking"]]
    assert any(n is not None for n in held)
    for basis, n in zip(bases, held, strict=True):
        assert basis.startswith(f"{int(n)} held-out run") if n is not None else basis == "—"
    assert 'id="plan-suggestions"' in page  # the next runs to train are still there


def test_plan_without_a_law_selection_renders(alpha_member, alpha, alpha_laws):
    plan = plan_create(team=alpha, request=plan_request(family="kumar", law="precision", budget={"flops": 1e21}))
    Plan.objects.filter(pk=plan.pk).update(law_selection=None)  # as plans made before laws were compared

    response = alpha_member.get(_plan_url(plan))

    assert response.status_code == 200
    assert "requested explicitly" in response.content.decode()
    assert 'id="plan-law-ranking"' not in response.content.decode()


def test_plan_list_shows_and_filters_by_requested_law(alpha_member, alpha, alpha_laws):
    plan_create(team=alpha, request=plan_request(family="kumar", law="precision", budget={"flops": 1e21}))
    auto = plan_create(team=alpha, request=plan_request(family="kumar", budget={"flops": 1e21}))

    listing = alpha_member.get("/admin/planner/plan/?requested_law=auto").content.decode()

    assert "requested_law" in listing
    assert re.findall(r'name="_selected_action" value="(\d+)"', listing) == [str(auto.pk)]


def test_a_failed_fits_page_shows_the_comparison_of_the_succeeded_ones(alpha_member, alpha, alpha_laws):
    failed = FitFactory.create(
        team=alpha, family="kumar", law="chinchilla", version=2, failed=True, error="did not converge"
    )

    page = alpha_member.get(_fit_url(failed.pk)).content.decode()

    chinchilla = next(r for r in _comparison_rows(page) if r["law"] == "chinchilla")
    assert chinchilla["url"] == _fit_url(alpha_laws["chinchilla"].pk)
    assert "page-law" in chinchilla["classes"]
    assert "the comparison uses the current version" in page


def test_a_fit_row_without_usable_parameters_has_no_density_in_the_plot_nor_in_the_trend(alpha):
    # The fit page's density plot and GET /density/trend/ read one selector, which answers "no density" for
    # parameters the law cannot use (None where a number belongs).
    fit = FitFactory.create(team=alpha, family="broken", law="chinchilla", params={**EPOCH, "alpha": None})
    RunFactory.create(team=alpha, family="broken", final_loss=3.0)
    Fit.objects.filter(pk=fit.pk).update(run_ids=list(Run.objects.filter(family="broken").values_list("id", flat=True)))
    fit.refresh_from_db()
    assert "No run with a defined density." in fit_density_plot(fit).svg
    trend = density_selectors.family_density_trend(team=alpha, family="broken")
    assert trend is not None
    assert trend.n_runs == 1
    assert trend.trend.doubling_days is None


def test_plan_page_shows_the_precision_decision_and_where_the_plan_sits(alpha_member, alpha, alpha_laws):
    request = plan_request(family="kumar", law="precision", budget={"flops": 1e12}, constraints={"post_train_bits": 4})
    plan = plan_create(team=alpha, request=request)

    page = alpha_member.get(_plan_url(plan)).content.decode()

    choice = plan.precision_choice
    assert choice is not None
    section = re.search(r'<section id="plan-precision-choice">(.*?)</section>', page, re.S)
    assert section is not None
    assert html.escape(choice["rule"]) in section.group(1)
    chosen = "/".join(f"{choice['chosen'][k]:g}" for k in ("weight_bits", "activation_bits", "kv_bits"))
    assert re.search(rf"chosen \(w/a/kv\)</td><td[^>]*>{re.escape(chosen)}<", section.group(1))
    position = re.search(r'<section id="plan-data-position">(.*?)</section>', page, re.S)
    assert position is not None
    rows = dict(re.findall(r"<tr><td>(\w+)</td>.*?<td>([^<]*)</td></tr>", position.group(1), re.S))
    assert plan.data_range["n_params"]["position"] == "below"  # a 1e12-FLOP budget is far below the runs
    assert rows["n_params"].endswith("x below")
    assert set(rows) == set(plan.data_range)
