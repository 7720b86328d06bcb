"""Plans, suggestions and predictions that know their limits (issue 23): the fit's verdict, the data's range and only
meaningful differences. Fits are stored with published parameters (tests.factories.FitFactory)."""

import pytest

from fits.models import Fit
from planner.services import PRECISION_RULE
from tests.factories import KUMAR_DATA_RANGE, FitFactory
from tests.published import EPOCH, KUMAR

pytestmark = pytest.mark.django_db

UNUSABLE_REASONS = [
    "no signal: the law explains 0.0% of the variance of log loss that a constant loss leaves (adjusted for its 9 "
    "parameters; below 50%): the runs do not show the dependence the law describes"
]


def test_a_plan_far_below_the_data_warns_and_says_where_it_sits(client_rw, team, post_plan):
    # The case: a 1e12-FLOP plan recommends N ~ 2e5 while the smallest fitted run has 3e7 parameters.
    FitFactory.create(team=team, law="precision", data_range=dict(KUMAR_DATA_RANGE))

    body = post_plan(client_rw, {"family": "main", "law": "precision", "budget": {"flops": 1e12}})

    n = body["recommendation"]["n_params"]
    assert n < KUMAR_DATA_RANGE["n_params_min"]
    below = [w for w in body["warnings"] if w.startswith("extrapolation: n_params")]
    assert below == [
        f"extrapolation: n_params {n:.3g} is {KUMAR_DATA_RANGE['n_params_min'] / n:.1f}x below the smallest in the "
        f"fit's data ({KUMAR_DATA_RANGE['n_params_min']:.3g})"
    ]
    where = body["data_range"]["n_params"]
    assert where["position"] == "below"
    assert where["factor"] == pytest.approx(KUMAR_DATA_RANGE["n_params_min"] / n)
    assert body["data_range"]["n_tokens"]["position"] == "below"


def test_a_plan_inside_the_data_has_no_extrapolation_warning_and_says_so(client_rw, team, post_plan):
    FitFactory.create(team=team, law="chinchilla", params=EPOCH, data_range=dict(KUMAR_DATA_RANGE))
    body = post_plan(client_rw, {"family": "main", "law": "chinchilla", "budget": {"flops": 6 * 2e8 * 4e9}})
    assert not [w for w in body["warnings"] if w.startswith("extrapolation")]
    assert {body["data_range"][k]["position"] for k in ("n_params", "n_tokens")} == {"inside"}


def test_an_unusable_fit_answers_no_plan_prediction_or_suggestion(client_rw, team, post_plan):
    FitFactory.create(team=team, law="precision", quality=Fit.Quality.UNUSABLE, quality_reasons=UNUSABLE_REASONS)

    explicit = post_plan(client_rw, {"family": "main", "law": "precision", "budget": {"flops": 1e22}}, expected=409)
    auto = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e22}}, expected=409)
    query = {"family": "main", "law": "precision", "n_params": 10**9, "n_tokens": 10**10}
    predict = client_rw.get("/api/v1/predict/", query)
    suggest = client_rw.post(
        "/api/v1/suggestions/",
        {"family": "main", "budget": {"flops": 1e22}, "experiment_budget": {"flops": 1e19}},
        format="json",
    )

    assert "is unusable: no signal" in explicit["errors"]["detail"][0]
    assert "No law's current fit of 'main' can answer" in auto["errors"]["detail"][0]
    assert predict.status_code == 409
    assert "is unusable: no signal" in predict.json()["errors"]["detail"][0]
    assert suggest.status_code == 409


def test_auto_skips_an_unusable_fit_for_a_usable_one(client_rw, team, post_plan):
    FitFactory.create(team=team, law="precision", quality=Fit.Quality.UNUSABLE, quality_reasons=UNUSABLE_REASONS)
    FitFactory.create(team=team, law="chinchilla", params=EPOCH)

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e22}})

    assert body["law"] == "chinchilla"
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "main"}).json()
    precision = next(e for e in ranking["ranking"] if e["law"] == "precision")
    assert precision["ranked"] is False
    assert precision["reason"].startswith("unusable fit: no signal")
    assert precision["quality"] == "unusable"
    assert "n_runs_covered" in precision


def test_a_weak_fit_answers_with_its_reasons_as_warnings(client_rw, team, post_plan):
    reason = "thin design: the fit rests on 3 model sizes (fewer than 4)"
    FitFactory.create(team=team, law="chinchilla", params=EPOCH, quality=Fit.Quality.WEAK, quality_reasons=[reason])

    plan = post_plan(client_rw, {"family": "main", "law": "chinchilla", "budget": {"flops": 1e22}})
    predict = client_rw.get(
        "/api/v1/predict/", {"family": "main", "law": "chinchilla", "n_params": 10**9, "n_tokens": 2 * 10**10}
    ).json()

    assert f"weak fit (v1): {reason}" in plan["warnings"]
    assert plan["fit"]["quality"] == "weak"
    assert f"weak fit (v1): {reason}" in predict["warnings"]
    assert predict["quality"] == "weak"


def test_the_kv_cache_stays_at_16_bits_unless_its_gain_clears_the_interval(client_rw, team, post_plan):
    # The case: with a deployment width of 4 bits, narrowing the KV cache lowers Kumar's PTQ term by a
    # sliver (2e-4 nats here) whose 95% interval over the draws spans zero: the plan keeps 16 bits and says why.
    FitFactory.create(team=team, law="precision", params=KUMAR, spread=0.01)
    constraints = {"weight_bits": 8, "activation_bits": 8, "post_train_bits": 4}

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e19}, "constraints": constraints})

    assert body["recommendation"]["kv_bits"] == 16.0
    choice = body["precision_choice"]
    assert choice["rule"] == PRECISION_RULE
    assert choice["decided"] == "reference"
    assert choice["kept_reference"] == ["kv_bits"]
    assert choice["point_best"]["kv_bits"] < 16
    lo, hi = choice["point_best_gain_interval"]
    assert lo < 0 < hi
    assert choice["reference"] == {"weight_bits": 8.0, "activation_bits": 8.0, "kv_bits": 16.0}


def test_a_gain_beyond_its_uncertainty_is_planned_and_shown_with_its_interval(client_rw, team, post_plan):
    FitFactory.create(team=team, law="precision", params=KUMAR, spread=0.01)

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e21}})

    choice = body["precision_choice"]
    assert choice["decided"] == "departure"
    assert body["recommendation"]["weight_bits"] < 16
    assert choice["gain_interval"][0] > 0
    assert choice["gain"] == pytest.approx(choice["point_best_gain"])
