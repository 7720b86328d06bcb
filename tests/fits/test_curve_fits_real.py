"""A stored curve fit on shipped real curves (MultiPower 100M, docs/curves.md "Stored curve fits"): logged through
the metric history as a training script would (train_loss and lr at the logged steps), fitted by the worker path;
its held-out score (each finished, decayed run forecast from the first half of its logged steps, the rest of the
family known) is within the bound measured for it."""

import pytest

from fits.laws.curve_data import load_multipower_curves
from fits.models import CurveScope, FamilyCurveFit
from fits.pipeline import fit_family_refresh
from runs.services import metric_points_append
from tests.factories import RunFactory
from workers.tasks import refit_curves

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUNS = ("cosine_24000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000")
# Measured 2026-12-05, held-out MAE: annealing 0.0072 nats (errors +0.009, -0.007, -0.011, +0.001), multipower
# 0.0023 (+0.003, +0.002, -0.003, -0.002). Each bound leaves under 2x: a fit that ignored the schedule (0.05-0.06
# from half a run, docs/curves.md) fails both.
HELDOUT_MAE_BOUND = {"annealing": 0.010, "multipower": 0.004}


@pytest.fixture(params=sorted(HELDOUT_MAE_BOUND))
def law(request, monkeypatch):
    monkeypatch.setattr("fits.curve_pipeline.curve_laws", lambda: (request.param,))
    return request.param


def test_multipower_100m_stored_fit_forecasts_held_out_final_losses_within_the_bound(team, law):
    curves = load_multipower_curves("100M")
    for name in RUNS:
        curve = curves[name]
        run = RunFactory.create(team=team, family="mp-100m", name=name, n_params=int(curve.n_params))
        steps = [int(s) for s in curve.steps]
        points = [("train_loss", float(v), s, 1_700_000_000_000 + s) for s, v in zip(steps, curve.loss, strict=True)]
        points += [("lr", float(v), s, 1_700_000_000_000 + s) for s, v in zip(steps, curve.lr, strict=True)]
        metric_points_append(run_id=run.pk, points=points)

    fit_family_refresh(team_id=team.pk, family="mp-100m")
    refit_curves(scope_id=CurveScope.objects.get(team=team, family="mp-100m").pk)

    fit = FamilyCurveFit.objects.get(team=team, family="mp-100m", law=law)
    assert fit.status == "succeeded", fit.error
    assert fit.heldout["n"] == len(RUNS)
    assert fit.heldout["mae"] <= HELDOUT_MAE_BOUND[law], fit.heldout
    assert fit.metrics["rmse"] < 0.02  # the fitted law follows the logged curves
