"""Every admin page a reviewer opens answers in a bounded number of queries, whatever the number of rows: the
run list, a run's page, the fit list, a fit's page (and one of its plots), the plan list, a plan's page, the plan
form and the MLflow run list. (docs/benchmarks.md has the time each takes on the demo data: bench/admin_pages.py.)

The bounds are what the pages take today plus a small margin: a page that starts reading per row fails here.
"""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlflow_compat.models import Experiment, MlflowRun
from planner.services import plan_create
from runs.models import MetricPoint, Run
from tests.factories import plan_request

PAGES = {
    # name: (url template, most queries)
    "run list": ("/admin/runs/run/", 15),
    # The run page computes the run's forecast when no cached one is current (fits.forecasts): the family's
    # version (4 aggregates), its runs, their metric keys, their trunks, one history read per run (at most
    # MAX_FAMILY_RUNS), the family's stored curve fit and its law ranking.
    "run page": ("/admin/runs/run/{run}/change/", 22),
    "fit list": ("/admin/fits/fit/", 12),
    "fit page": ("/admin/fits/fit/{fit}/change/", 16),
    "fit plot": ("/admin/fits/fit/{fit}/plot/residuals.svg", 8),
    "plan list": ("/admin/planner/plan/", 12),
    "plan page": ("/admin/planner/plan/{plan}/change/", 18),
    "plan form": ("/admin/planner/plan/add/", 9),
    "MLflow run list": ("/admin/mlflow_compat/mlflowrun/", 9),
}


@pytest.fixture
def demo(alpha, alpha_runs, alpha_fits):
    """The alpha team's sweep and two fit versions, a plan, and MLflow runs mapped to its runs."""
    plan = plan_create(team=alpha, request=plan_request(family="kumar", law="precision", budget={"flops": 1e21}))
    experiment = Experiment.objects.create(team=alpha, name="sweep")
    MlflowRun.objects.bulk_create(
        MlflowRun(
            team=alpha,
            experiment=experiment,
            run_id=f"{i:032x}",
            run_name=f"run {i}",
            bitscale_run=run,
            start_time=1796393071015 + i,
            history_points=100,
        )
        for i, run in enumerate(alpha_runs[:150])
    )
    MetricPoint.objects.bulk_create(  # a loss curve on the run's page: two keys of 300 steps
        MetricPoint(run=alpha_runs[-1], key=key, step=step, value=4.0 - step / 300, timestamp=step)
        for key in ("train_loss", "val_loss")
        for step in range(300)
    )
    return {"run": alpha_runs[-1].pk, "fit": alpha_fits[1].pk, "plan": plan.pk}


@pytest.mark.parametrize("page", list(PAGES))
def test_each_admin_page_takes_a_bounded_number_of_queries(page, demo, alpha_member, django_assert_max_num_queries):
    template, most = PAGES[page]
    url = template.format(**demo)
    cache.clear()  # the first view: plots and contours are rendered, not read from the cache

    with django_assert_max_num_queries(most):
        response = alpha_member.get(url)

    assert response.status_code == 200


def test_the_run_list_reads_the_same_queries_for_10_or_150_runs(demo, alpha, alpha_member):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alpha_member.get("/admin/runs/run/").status_code == 200
        return len(captured)

    many = queries()
    Run.objects.filter(team=alpha).exclude(pk__in=Run.objects.filter(team=alpha).order_by("-pk")[:10]).delete()
    assert queries() == many
