"""POST /api/v1/suggestions/, planner.suggestion_services and planner.suggestions (next-run suggestions).

The issue's test: on synthetic data from Kumar's law (a small grid, so the target budget extrapolates 500x), the
suggested runs, simulated from the same law with 0.5% noise and added to the data, narrow the refit's 95%
interval of the loss at the plan's optimum - more than the same number of random affordable runs do.
"""

import numpy as np
import pytest

from fits.laws import KUMAR_TABLE2, FitResult, Observations, RunConfig, fit_law, in_domain, predict_loss_draws
from fits.laws.equations import precision_loss
from fits.models import Fit
from planner.allocation import cost_factor
from planner.requests import budget_from
from planner.suggestion_services import suggestions_compute
from planner.suggestions import Candidates, SuggestionError, Target, candidate_grid, suggest_runs
from tests.factories import KUMAR_DATA_RANGE, FitFactory, plan_request
from tests.published import EPOCH, KUMAR

pytestmark = pytest.mark.django_db

TRUE = {**KUMAR_TABLE2, "n_post": 0.0}
CONFIGS = [(16, 16, 16), (4, 16, 16), (8, 16, 16), (16, 4, 16), (16, 8, 16), (16, 16, 4), (16, 16, 8), (6, 6, 6)]
GRID = [(n, d, *c) for n in (20e6, 40e6, 80e6) for d in (0.5e9, 1e9, 2e9, 4e9) for c in CONFIGS]
TARGET_FLOPS = 1e21
EXPERIMENT_FLOPS = 2e18
N_BOOTSTRAP = 50


def simulate(rows, seed):
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    n, d, w, a, kv = arr.T
    clean = precision_loss(TRUE, n_params=n, n_tokens=d, weight_bits=w, activation_bits=a, kv_bits=kv)
    return arr, clean * (1.0 + 0.005 * np.random.default_rng(seed).standard_normal(clean.shape))


def fit(arr, loss):
    n, d, w, a, kv = arr.T
    data = Observations.build(n_params=n, n_tokens=d, weight_bits=w, activation_bits=a, kv_bits=kv, final_loss=loss)
    return fit_law("precision", data, n_bootstrap=N_BOOTSTRAP, seed=0)


def interval_width_at(result: FitResult, target):
    """95% width across the result's draws of the loss at the (fixed) target configuration."""
    y = predict_loss_draws(
        "precision",
        result.draws[np.all(np.isfinite(result.draws), axis=1)],
        result.draw_names,
        result.fixed,
        RunConfig(
            n_params=np.array([target["n_params"]], dtype=np.float64),
            n_tokens=np.array([target["n_tokens"]], dtype=np.float64),
            weight_bits=np.array([target["weight_bits"]]),
            activation_bits=np.array([target["activation_bits"]]),
            kv_bits=np.array([target["kv_bits"]]),
        ),
    )
    lo, hi = np.percentile(y, [2.5, 97.5])
    return float(hi - lo)


def body(**overrides):
    out = {"family": "main", "budget": {"flops": TARGET_FLOPS}, "experiment_budget": {"flops": EXPERIMENT_FLOPS}}
    out.update(overrides)
    return out


def post(client, data, expected=200):
    response = client.post("/api/v1/suggestions/", data, format="json")
    assert response.status_code == expected, response.json()
    return response.json()


@pytest.fixture(scope="module")
def synthetic():
    arr, loss = simulate(GRID, seed=0)
    return arr, loss, fit(arr, loss)


# --- The test ---------------------------------------------------------------------------------------


def test_suggested_runs_narrow_the_optimum_interval_more_than_random_affordable_runs(client_rw, team, synthetic):
    arr, loss, result = synthetic
    FitFactory.create(team=team, result=result)

    out = post(client_rw, body(max_suggestions=3))

    target = out["target"]
    runs = out["suggestions"]
    assert 1 <= len(runs) <= 3
    assert out["total_cost_flops"] <= EXPERIMENT_FLOPS * (1 + 1e-9)
    assert out["expected_narrowing"] > 0.2
    before = interval_width_at(result, target)
    assert before == pytest.approx(target["predicted_loss_interval"][1] - target["predicted_loss_interval"][0])

    rows = [(r["n_params"], r["n_tokens"], r["weight_bits"], r["activation_bits"], r["kv_bits"]) for r in runs]
    new_arr, new_loss = simulate(rows, seed=1)
    suggested = interval_width_at(fit(np.vstack([arr, new_arr]), np.concatenate([loss, new_loss])), target)

    # Random affordable runs: as many, drawn from a grid of the same N range and bit widths, within the budget.
    grid = candidate_grid(
        experiment_flops=EXPERIMENT_FLOPS,
        bit_configs=[(16.0, 16.0, 16.0), (4.0, 4.0, 4.0), (6.0, 6.0, 6.0), (8.0, 8.0, 8.0)],
        cost_factor_fn=lambda w, a: cost_factor(w, a, cost_model="linear_bits"),
        n_min=20e6,
        n_max=target["n_params"],
    )
    rng = np.random.default_rng(7)
    random_widths = []
    for _ in range(2):
        while True:
            pick = rng.choice(len(grid), size=len(runs), replace=False)
            if grid.cost_flops[pick].sum() <= EXPERIMENT_FLOPS:
                break
        rand = np.column_stack([grid.n_params, grid.n_tokens, grid.weight_bits, grid.activation_bits, grid.kv_bits])[
            pick
        ]
        rand_arr, rand_loss = simulate(rand, seed=1)
        random_widths.append(
            interval_width_at(fit(np.vstack([arr, rand_arr]), np.concatenate([loss, rand_loss])), target)
        )

    print(f"width before {before:.4f}, suggested {suggested:.4f}, random {random_widths}")
    assert suggested < 0.8 * before, (before, suggested)
    assert suggested < min(random_widths), (suggested, random_widths)


# --- Contract -----------------------------------------------------------------------------------------------


def test_response_contract_cost_count_and_domain(client_rw, team):
    FitFactory.create(team=team, params=KUMAR)

    out = post(client_rw, body(max_suggestions=2))

    assert set(out) >= {
        "fit",
        "target",
        "target_loss_interval",
        "expected_target_loss_interval",
        "expected_narrowing",
        "suggestions",
        "total_cost_flops",
        "experiment_budget_flops",
        "warnings",
    }
    assert 1 <= len(out["suggestions"]) <= 2
    assert sum(s["cost_flops"] for s in out["suggestions"]) <= EXPERIMENT_FLOPS * (1 + 1e-9)
    before = out["target_loss_interval"][1] - out["target_loss_interval"][0]
    widths = [s["expected_target_interval_width"] for s in out["suggestions"]]
    assert all(w <= before for w in widths)
    assert widths == sorted(widths, reverse=True)
    for s in out["suggestions"]:
        factor = max(s["weight_bits"], s["activation_bits"]) / 16
        assert s["cost_flops"] == pytest.approx(6 * s["n_params"] * s["n_tokens"] * factor, rel=1e-9)
        assert s["n_params"] <= out["target"]["n_params"]
        assert in_domain(KUMAR, weight_bits=s["weight_bits"], activation_bits=s["activation_bits"])
        assert in_domain(KUMAR, kv_bits=s["kv_bits"])


def test_suggestions_say_where_their_target_sits_as_plans_do(client_rw, team):
    FitFactory.create(team=team, params=KUMAR, data_range=dict(KUMAR_DATA_RANGE))

    out = post(client_rw, body(max_suggestions=1))
    plan = client_rw.post(
        "/api/v1/plans/",
        {k: v for k, v in body().items() if k not in ("experiment_budget", "max_suggestions")},
        format="json",
    ).json()

    assert out["data_range"] == plan["data_range"]
    # The target budget is far beyond the fitted runs: the answer says so on the size axis.
    assert out["data_range"]["n_params"]["position"] == "above"
    assert out["data_range"]["n_params"]["factor"] == pytest.approx(
        out["target"]["n_params"] / KUMAR_DATA_RANGE["n_params_max"]
    )


def test_chinchilla_suggestions_are_16_bit(client_rw, team):
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")
    out = post(client_rw, body(law="chinchilla"))
    assert out["suggestions"]
    assert all((s["weight_bits"], s["activation_bits"], s["kv_bits"]) == (16, 16, 16) for s in out["suggestions"])


def test_no_succeeded_fit_is_409(client_rw, team):
    post(client_rw, body(), expected=409)


def test_another_teams_fit_is_never_used(other_client, team):
    FitFactory.create(team=team, params=KUMAR)
    post(other_client, body(), expected=409)


def test_read_only_key_is_403(client_ro, team):
    FitFactory.create(team=team, params=KUMAR)
    post(client_ro, body(), expected=403)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(experiment_budget={}), "experiment_budget"),
        (body(experiment_budget={"flops": -1}), "experiment_budget"),
        (body(max_suggestions=0), "max_suggestions"),
        (body(max_suggestions=11), "max_suggestions"),
        (body(unknown=1), "unknown"),
        (body(law="nope"), "law"),
        (body(constraints={"kv_bits": 100}), "constraints"),
        ({"family": "main", "budget": {"flops": 1e21}}, "experiment_budget"),
    ],
)
def test_bad_input_is_400_naming_the_field(client_rw, team, data, field):
    FitFactory.create(team=team, params=KUMAR)
    out = post(client_rw, data, expected=400)
    assert field in str(out)


def test_an_experiment_budget_too_small_for_any_run_is_400(client_rw, team):
    FitFactory.create(team=team, params=KUMAR)
    out = post(client_rw, body(experiment_budget={"flops": 1e6}), expected=400)
    assert "experiment_budget" in out["errors"]


def test_service_caps_suggestions_and_stores_nothing(team):
    FitFactory.create(team=team, params=KUMAR)
    before = Fit.objects.count()
    out = suggestions_compute(
        team=team,
        request=plan_request(family="main", budget={"flops": 1e21}),
        experiment_budget=budget_from({"flops": 1e19}),
        max_suggestions=50,
    )
    assert len(out.ranked.suggestions) <= 10
    assert Fit.objects.count() == before


# --- Pure maths ---------------------------------------------------------------------------------------------


def test_linear_gaussian_update_picks_the_informative_candidate():
    """Two candidates: one whose loss moves with the target's across draws, one independent of it."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400)
    noise = rng.standard_normal(400)

    def draws_fn(n, d, w, a, kv, post):
        # target (n = 1e9): 3 + 0.1 z; candidate n = 1e7: 4 + 0.05 z (correlated); n = 2e7: 4 + 0.05 noise.
        n = np.asarray(n)
        base = np.where(n >= 1e9, 3.0, 4.0)
        scale = np.where(n >= 1e9, 0.1, 0.05)
        driver = np.where(n == 2e7, noise[:, None], z[:, None])
        return base + scale * driver

    cands = Candidates(
        n_params=np.array([1e7, 2e7]),
        n_tokens=np.array([1e8, 1e8]),
        weight_bits=np.array([16.0, 16.0]),
        activation_bits=np.array([16.0, 16.0]),
        kv_bits=np.array([16.0, 16.0]),
        cost_flops=np.array([6e15, 6e15]),
    )
    res = suggest_runs(
        draws_fn, Target(1e9, 2e10, 16, 16, 16), cands, experiment_flops=1e16, max_suggestions=2, noise_rel=0.001
    )
    assert len(res.suggestions) == 1  # the budget affords one
    assert res.suggestions[0].n_params == 1e7
    var_t = np.var(3 + 0.1 * z, ddof=1)
    cov = np.cov(3 + 0.1 * z, 4 + 0.05 * z)[0, 1]
    var_c = np.var(4 + 0.05 * z, ddof=1)
    assert res.suggestions[0].variance_reduction == pytest.approx(cov**2 / (var_c + (0.001 * 4) ** 2), rel=1e-2)
    assert res.suggestions[0].variance_reduction < var_t
    with pytest.raises(SuggestionError):
        suggest_runs(draws_fn, Target(1e9, 2e10, 16, 16, 16), cands, experiment_flops=1e10)
