"""Plan search and allocation maths against published closed forms and Kumar et al.'s derived optima (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from planner.allocation import (
    HARDWARE_PROFILES,
    PlanConstraints,
    PlanningError,
    argmin_on_isoflop,
    budget_to_flops,
    compute_optimal_allocation,
    compute_optimal_precision,
    cost_factor,
    plan_search,
)
from tests.published import EPOCH, KUMAR

KUMAR_NO_OFFSETS = {**KUMAR, "n_w": 0.0, "n_a": 0.0, "n_kv": 0.0}

DECADES = [1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25]


def chinchilla_loss(p):
    def loss(n, d, wb, ab, kvb, post):
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]

    return loss


def kumar_loss(p):
    """The unified law (laws.md 4.3 with offsets, 5 Eq. 9 with C_x = 1), NaN outside its domain.

    Outside the domain: N_eff <= 0 (e.g. activations at 3 bits with the offsets) and, under PTQ, any
    training width at or below the deployment width (the law assumes P_train > P_post).
    """

    def factor(bits, gamma, offset):
        return 1.0 - np.exp(-bits / gamma + offset)

    def loss(n, d, wb, ab, kvb, post):
        n_eff = (
            n
            * factor(wb, p["gamma_w"], p["n_w"])
            * factor(ab, p["gamma_a"], p["n_a"])
            * factor(kvb, p["gamma_kv"], p["n_kv"])
        )
        ok = n_eff > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            n_eff_pos = np.where(ok, n_eff, 1.0)
            value = p["E"] + p["A"] * n_eff_pos ** -p["alpha"] + p["B"] * d ** -p["beta"]
            if post is not None:
                ok = ok & (wb > post) & (ab > post) & (kvb > post)
                robust = (1 - np.exp(-(wb - post))) * (1 - np.exp(-(ab - post))) * (1 - np.exp(-(kvb - post)))
                value = value + (
                    p["C_T"]
                    * np.exp(-post / p["gamma_post"] + p["n_post"])
                    * d ** p["gamma_D"]
                    / n_eff_pos ** p["gamma_N"]
                    * robust
                )
        return np.where(ok, value, np.nan)

    return loss


def closed_form_n_opt(p, compute):
    """Hoffmann eq. 4 as printed in laws.md 2.2, written out independently of the planner."""
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return g * (compute / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))


SIXTEEN = PlanConstraints(weight_bits=16, activation_bits=16, kv_bits=16)


# --- Chinchilla allocation --------------------------------------------------------------------------------


@pytest.mark.parametrize("compute", DECADES)
def test_unconstrained_16_bit_plan_matches_closed_form(compute):
    result = plan_search(chinchilla_loss(EPOCH), compute, constraints=SIXTEEN)
    n_opt = closed_form_n_opt(EPOCH, compute)
    assert result.recommendation.n_params == pytest.approx(n_opt, rel=0.01)
    assert result.recommendation.n_tokens == pytest.approx(compute / (6 * n_opt), rel=0.01)
    assert result.recommendation.compute_flops <= compute
    assert result.baseline is not None
    assert result.baseline.n_params == pytest.approx(n_opt, rel=0.01)
    assert not result.bounds.on_search_bound


@pytest.mark.parametrize("compute", [1e19, 1e21, 1e23])
def test_closed_form_allocation_matches_numeric_argmin(compute):
    p = EPOCH
    closed = compute_optimal_allocation(p["A"], p["B"], p["alpha"], p["beta"], compute)
    numeric = argmin_on_isoflop(p["A"], p["B"], p["alpha"], p["beta"], compute)
    assert closed.n_params == pytest.approx(numeric.n_params, rel=1e-3)
    assert closed.n_params == pytest.approx(closed_form_n_opt(p, compute), rel=1e-9)
    assert closed.n_params * closed.n_tokens == pytest.approx(compute / 6, rel=1e-9)


@pytest.mark.parametrize(
    ("compute", "n_params", "n_tokens"),
    # laws.md 2.3, Epoch column (derived values, 3 significant figures).
    [(1e18, 81e6, 2.07e9), (1e21, 2.78e9, 60e9), (1e24, 95.9e9, 1.74e12)],
)
def test_closed_form_reproduces_derived_epoch_optima(compute, n_params, n_tokens):
    p = EPOCH
    allocation = compute_optimal_allocation(p["A"], p["B"], p["alpha"], p["beta"], compute)
    assert allocation.n_params == pytest.approx(n_params, rel=0.01)
    assert allocation.n_tokens == pytest.approx(n_tokens, rel=0.01)


def test_chinchilla_allocation_does_not_use_the_olmo_ratio():
    """The shipped-wrong ratio N = (alpha*B)/(beta*A)*D contradicts alpha*A*N^-alpha = beta*B*D^-beta."""
    p = EPOCH
    rec = plan_search(chinchilla_loss(p), 1e22, constraints=SIXTEEN).recommendation
    lhs = p["alpha"] * p["A"] * rec.n_params ** -p["alpha"]
    rhs = p["beta"] * p["B"] * rec.n_tokens ** -p["beta"]
    assert lhs == pytest.approx(rhs, rel=0.01)


# --- Compute-optimal precision (Kumar) --------------------------------------------------------------------


def test_tied_precision_identity():
    """laws.md 6.3: exp(P/g) = 1 + 3P/g, so P* = 1.9038 g for three equal gammas without offsets."""
    x = optimize.brentq(lambda x: math.exp(x) - 1 - 3 * x, 0.5, 5)
    assert x == pytest.approx(1.9038, abs=1e-4)
    for gamma in (1.0, 1.9475, 2.6745):
        assert compute_optimal_precision([gamma] * 3) == pytest.approx(x * gamma, rel=1e-5)


def test_precision_with_table_2_offsets_is_seven_bits():
    gammas = [KUMAR["gamma_w"], KUMAR["gamma_a"], KUMAR["gamma_kv"]]
    offsets = [KUMAR["n_w"], KUMAR["n_a"], KUMAR["n_kv"]]
    assert compute_optimal_precision(gammas, offsets) == pytest.approx(7.00, abs=0.01)  # laws.md 6.3 table
    assert compute_optimal_precision(gammas) == pytest.approx(3.47, abs=0.01)  # same table, no offsets


@pytest.mark.parametrize("compute", [1e19, 1e22, 1e25])
def test_search_finds_tied_identity_without_offsets(compute):
    """N, D and P free with gamma_bar tied: the search lands on P* = 1.9038 * gamma_bar = 3.71 at every C."""
    gamma_bar = (KUMAR["gamma_w"] + KUMAR["gamma_a"] + KUMAR["gamma_kv"]) / 3
    assert gamma_bar == pytest.approx(1.9475, abs=1e-4)
    tied = {**KUMAR_NO_OFFSETS, "gamma_w": gamma_bar, "gamma_a": gamma_bar, "gamma_kv": gamma_bar}
    bits = tuple(np.round(np.arange(2.5, 6.0, 0.01), 2))
    result = plan_search(kumar_loss(tied), compute, constraints=PlanConstraints(bits_choices=bits), tie_bits=True)
    assert result.recommendation.weight_bits == pytest.approx(1.9038 * gamma_bar, abs=0.015)


@pytest.mark.parametrize("tie_bits", [False, True])
def test_kumar_optimal_training_precision_is_seven_bits_at_every_budget(tie_bits):
    """Issue 6 test 2: 7 bits (+-0.5) for weights and activations from 1e19 to 1e25; flat tokens per parameter."""
    ratios = []
    for compute in [1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25]:
        rec = plan_search(kumar_loss(KUMAR), compute, cost_model="linear_bits", tie_bits=tie_bits).recommendation
        assert rec.weight_bits == pytest.approx(7, abs=0.5)
        assert rec.activation_bits == pytest.approx(7, abs=0.5)
        assert rec.compute_flops == pytest.approx(compute, rel=1e-6)
        ratios.append(rec.tokens_per_param)
    assert max(ratios) / min(ratios) < 1.05
    assert np.mean(ratios) == pytest.approx(13, rel=0.1)  # laws.md 6.3: D/N ~ 13 at the optimum


def test_precision_rises_with_compute_at_fixed_n():
    """Issue 6 test 3 and laws.md 6.4: at N = 1e8, P* = 8.1, 10.7, 13.6, 16.6 for C = 1e18..1e21."""
    bits = tuple(np.round(np.arange(3.0, 24.0, 0.05), 2))
    constraints = PlanConstraints(n_params=1e8, bits_choices=bits)
    p_star = [
        plan_search(kumar_loss(KUMAR), c, constraints=constraints, tie_bits=True).recommendation.weight_bits
        for c in [1e18, 1e19, 1e20, 1e21]
    ]
    assert p_star == pytest.approx([8.1, 10.7, 13.6, 16.6], abs=0.1)
    steps = np.diff(p_star)
    assert np.all(np.abs(steps - 3.0) < 0.5)
    for compute in [1e18, 1e21]:
        rec = plan_search(kumar_loss(KUMAR), compute, constraints=constraints, tie_bits=True).recommendation
        assert rec.n_params == 100_000_000


def test_precision_rises_with_compute_at_fixed_n_on_integer_untied_grid():
    constraints = PlanConstraints(n_params=1e8, bits_choices=tuple(range(3, 25)))
    recs = [plan_search(kumar_loss(KUMAR), c, constraints=constraints).recommendation for c in [1e18, 1e19, 1e20]]
    assert [r.weight_bits for r in recs] == [8, 11, 14]
    assert [r.activation_bits for r in recs] == [8, 11, 14]


# --- PTQ and memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compute", [1e19, 1e21, 1e23])
def test_four_bit_deployment_moves_optimum_to_more_params_fewer_tokens(compute):
    """Issue 6 test 4: the PTQ penalty grows as D^gamma_D / N^gamma_N, so deploying at 4 bits favours larger N."""
    loss = kumar_loss(KUMAR)
    plain = plan_search(loss, compute)
    ptq = plan_search(loss, compute, constraints=PlanConstraints(post_train_bits=4))
    assert ptq.recommendation.n_params > plain.recommendation.n_params
    assert ptq.recommendation.n_tokens < plain.recommendation.n_tokens
    assert ptq.baseline is not None
    assert plain.baseline is not None
    assert ptq.baseline.n_params > plain.baseline.n_params
    assert ptq.baseline.post_train_bits == 4
    # The baseline is evaluated after PTQ too: 16-bit training, 4-bit deployment costs loss.
    assert ptq.baseline.predicted_loss > plain.baseline.predicted_loss


@pytest.mark.parametrize("cap_bytes", [1e8, 5e8, 2e9, 1e10])
@pytest.mark.parametrize("post_train_bits", [None, 4])
def test_memory_cap_is_never_exceeded(cap_bytes, post_train_bits):
    constraints = PlanConstraints(weights_memory_max_bytes=cap_bytes, post_train_bits=post_train_bits)
    result = plan_search(kumar_loss(KUMAR), 1e22, constraints=constraints)
    for config in (result.recommendation, result.baseline, *result.alternatives):
        assert config is not None
        deployed = config.post_train_bits if config.post_train_bits is not None else config.weight_bits
        assert config.n_params * deployed / 8 <= cap_bytes
        assert config.weights_memory_bytes <= cap_bytes
    assert result.bounds.memory_cap_binding  # the unconstrained optimum at 1e22 needs ~15 GB


def test_no_ptq_when_deployment_is_not_below_training_bits():
    result = plan_search(kumar_loss(KUMAR), 1e21, constraints=PlanConstraints(post_train_bits=16, bits_choices=(8,)))
    rec = result.recommendation
    assert rec.weight_bits == 8
    assert rec.post_train_bits is None
    assert rec.weights_memory_bytes == rec.n_params * 8 / 8


# --- Constraints -----------------------------------------------------------------------------------------


def test_fixed_n_params_is_respected():
    result = plan_search(chinchilla_loss(EPOCH), 1e21, constraints=PlanConstraints(n_params=7e8, weight_bits=16))
    assert result.recommendation.n_params == 700_000_000
    assert result.recommendation.n_tokens == pytest.approx(1e21 / (6 * 7e8), rel=1e-6)


def test_n_params_max_is_respected_and_binds():
    n_opt = closed_form_n_opt(EPOCH, 1e22)
    constraints = PlanConstraints(weight_bits=16, activation_bits=16, kv_bits=16, n_params_max=n_opt / 4)
    result = plan_search(chinchilla_loss(EPOCH), 1e22, constraints=constraints)
    assert result.recommendation.n_params <= n_opt / 4
    assert result.recommendation.n_params == pytest.approx(n_opt / 4, rel=1e-6)
    assert result.bounds.n_params_max_binding
    assert not result.bounds.n_params_at_search_max


def test_token_cap_is_respected_and_moves_to_larger_models():
    """Data-limited: D is capped, the plan picks a larger N than Chinchilla would, never more tokens than allowed."""
    compute = 1e23
    n_opt = closed_form_n_opt(EPOCH, compute)
    d_opt = compute / (6 * n_opt)
    d_max = d_opt / 10
    constraints = PlanConstraints(weight_bits=16, activation_bits=16, kv_bits=16, n_tokens_max=d_max)
    loss = chinchilla_loss(EPOCH)
    rec = plan_search(loss, compute, constraints=constraints).recommendation
    assert rec.n_tokens <= d_max
    assert rec.n_params > n_opt
    assert rec.compute_flops <= compute * (1 + 1e-9)
    # The optimum is the crossover N = C / (6 * d_max): all allowed tokens, and the whole budget spent.
    assert rec.n_tokens == pytest.approx(d_max, rel=1e-6)
    assert rec.compute_flops == pytest.approx(compute, rel=1e-6)
    # Optimality against a brute-force scan over N with the token cap applied.
    n_grid = np.logspace(8, 14, 200_001)
    d_grid = np.minimum(compute / (6 * n_grid), d_max)
    values = loss(n_grid, d_grid, 16, 16, 16, None)
    assert rec.predicted_loss <= values.min() + 1e-9
    assert rec.n_params == pytest.approx(n_grid[np.argmin(values)], rel=0.01)


def test_token_cap_with_size_cap_leaves_budget_unused_and_says_so():
    constraints = PlanConstraints(weight_bits=16, activation_bits=16, kv_bits=16, n_tokens_max=1e10, n_params_max=1e9)
    result = plan_search(chinchilla_loss(EPOCH), 1e22, constraints=constraints)
    rec = result.recommendation
    assert rec.n_params == 1_000_000_000
    assert rec.n_tokens == 10_000_000_000
    assert rec.compute_flops == pytest.approx(6e19)
    assert result.bounds.n_tokens_max_binding
    assert result.bounds.n_params_max_binding
    assert any("of the budget" in w for w in result.warnings)


def test_bits_choices_and_fixed_bits_are_respected():
    loss = kumar_loss(KUMAR)
    result = plan_search(loss, 1e21, constraints=PlanConstraints(bits_choices=(4, 6, 12)))
    configs = [result.recommendation, *result.alternatives]
    for config in configs:
        assert {config.weight_bits, config.activation_bits, config.kv_bits} <= {4, 6, 12}
    fixed = plan_search(loss, 1e21, constraints=PlanConstraints(weight_bits=5, bits_choices=(6, 8, 10)))
    for config in (fixed.recommendation, *fixed.alternatives):
        assert config.weight_bits == 5
        assert config.activation_bits in {6, 8, 10}


def test_alternatives_are_distinct_and_no_better_than_the_recommendation():
    result = plan_search(kumar_loss(KUMAR), 1e21)
    assert 1 <= len(result.alternatives) <= 5
    keys = {(a.weight_bits, a.activation_bits, a.kv_bits) for a in result.alternatives}
    assert len(keys) == len(result.alternatives)
    rec = result.recommendation
    assert (rec.weight_bits, rec.activation_bits, rec.kv_bits) not in keys
    assert all(a.predicted_loss >= rec.predicted_loss - 1e-9 for a in result.alternatives)
    assert result.baseline is not None
    assert result.loss_improvement_over_baseline == pytest.approx(result.baseline.predicted_loss - rec.predicted_loss)
    assert result.loss_improvement_over_baseline > 0


def test_contradictory_constraints_raise():
    with pytest.raises(PlanningError):
        PlanConstraints(n_params=1e9, n_params_max=1e8)
    with pytest.raises(PlanningError):
        plan_search(kumar_loss(KUMAR), 1e21, constraints=PlanConstraints(weight_bits=4, kv_bits=8), tie_bits=True)


# --- Domain ----------------------------------------------------------------------------------------------


def test_out_of_domain_configurations_are_never_recommended():
    """With offsets, activations at 3 bits give N_eff < 0 (laws.md 4.3); a law NaN above 1e9 params is capped."""
    base = kumar_loss(KUMAR)

    def loss(n, d, wb, ab, kvb, post):
        return np.where(n > 1e9, np.nan, base(n, d, wb, ab, kvb, post))

    result = plan_search(loss, 1e22, constraints=PlanConstraints(bits_choices=(3, 4, 5, 6)))
    for config in (result.recommendation, *result.alternatives):
        assert math.isfinite(config.predicted_loss)
        assert config.n_params <= 1e9
        assert config.activation_bits > 3


def test_everything_out_of_domain_raises():
    def loss(n, d, wb, ab, kvb, post):
        return np.full(np.broadcast_shapes(np.shape(n), np.shape(wb)), np.nan)

    with pytest.raises(PlanningError):
        plan_search(loss, 1e21)


# --- Hardware and budgets --------------------------------------------------------------------------------


def test_h100_hardware_cost_steps_at_native_formats():
    factors = cost_factor([16, 12, 8, 6, 4, 3], [16, 12, 8, 6, 4, 3], cost_model="hardware", hardware="h100")
    np.testing.assert_allclose(factors, [1, 1, 0.5, 0.5, 0.5, 0.5], rtol=1e-3)
    b200 = cost_factor([16, 8, 6, 4], [16, 8, 6, 4], cost_model="hardware", hardware="b200")
    np.testing.assert_allclose(b200, [1, 0.5, 0.5, 0.25])
    linear = cost_factor([16, 8, 4, 4], [16, 8, 4, 8], cost_model="linear_bits")
    np.testing.assert_allclose(linear, [1, 0.5, 0.25, 0.5])  # P = max(weight, activation)


def test_hardware_cost_model_prefers_8_bit_on_h100_and_4_bit_buys_nothing():
    loss = kumar_loss(KUMAR)
    result = plan_search(loss, 1e22, cost_model="hardware", hardware="h100")
    rec = result.recommendation
    assert max(rec.weight_bits, rec.activation_bits) == 8
    assert result.baseline is not None
    assert rec.predicted_loss < result.baseline.predicted_loss
    # Same N at 4 and at 8 bits: the same tokens, i.e. no extra speed for 4-bit on H100.
    at = {
        b: plan_search(
            loss,
            1e22,
            cost_model="hardware",
            hardware="h100",
            constraints=PlanConstraints(n_params=1e9, weight_bits=b, activation_bits=b),
        ).recommendation
        for b in (4, 8)
    }
    assert at[4].n_tokens == at[8].n_tokens == pytest.approx(2 * 1e22 / (6 * 1e9), rel=1e-3)  # 1978.9 / 989.4 TF


def test_budget_from_gpu_hours():
    # laws.md 7.1: one H100 GPU-hour at the dense BF16 peak is 3.56e18 FLOPs; 1,000 hours at 40% MFU ~ 1.4e21.
    assert budget_to_flops(gpu_hours=1, hardware="h100", mfu=1.0) == pytest.approx(3.56e18, rel=0.01)
    assert budget_to_flops(gpu_hours=1000, hardware="H100", mfu=0.4) == pytest.approx(1.4e21, rel=0.03)
    assert budget_to_flops(gpu_hours=1000, hardware="h100") == budget_to_flops(gpu_hours=1000, hardware="h100", mfu=0.4)
    assert budget_to_flops(flops=1e21) == 1e21
    assert set(HARDWARE_PROFILES) >= {"h100", "h200", "b200", "a100"}
    with pytest.raises(ValueError, match="exactly one"):
        budget_to_flops(flops=1e21, gpu_hours=10, hardware="h100")
    with pytest.raises(ValueError, match="hardware"):
        budget_to_flops(gpu_hours=10)


# --- Bootstrap draws -------------------------------------------------------------------------------------


def _draws(params, n_draws, scale, seed):
    rng = np.random.default_rng(seed)
    arrays = {k: (v * np.exp(rng.normal(0, scale, n_draws))).reshape(n_draws, 1, 1) for k, v in params.items()}
    return kumar_loss(arrays)


def test_identical_draws_give_a_degenerate_spread():
    params = {k: np.full((20, 1, 1), v) for k, v in KUMAR.items()}
    result = plan_search(kumar_loss(KUMAR), 1e21, draws=kumar_loss(params))
    spread = result.optimum_spread
    rec = result.recommendation
    assert spread is not None
    assert spread.n_draws == spread.n_valid_draws == 20
    assert spread.n_params[0] == pytest.approx(rec.n_params, rel=0.01)
    assert spread.n_params[1] == pytest.approx(rec.n_params, rel=0.01)
    assert spread.weight_bits == (rec.weight_bits, rec.weight_bits)
    assert rec.predicted_loss_interval == pytest.approx((rec.predicted_loss, rec.predicted_loss))


def test_spread_covers_the_central_optimum():
    result = plan_search(kumar_loss(KUMAR), 1e21, draws=_draws(KUMAR, 200, 0.02, seed=1))
    spread = result.optimum_spread
    rec = result.recommendation
    assert spread is not None
    assert spread.n_draws == 200
    assert spread.n_params[0] < rec.n_params < spread.n_params[1]
    assert spread.weight_bits[0] <= rec.weight_bits <= spread.weight_bits[1]
    lo, hi = rec.predicted_loss_interval or (math.nan, math.nan)
    assert lo < rec.predicted_loss < hi
    assert spread.fraction_at_window_edge == 0.0


# --- Only meaningful differences: the reference precision unless the gain clears its uncertainty ------------------

REFERENCE = (16.0, 16.0, 16.0)


def test_a_narrower_kv_cache_whose_gain_is_inside_its_interval_is_not_recommended():
    # 8-bit weights and activations deployed at 4 bits: Kumar's PTQ term shrinks as the KV width nears 4 bits, so
    # the point optimum narrows the KV cache (6 bits) for a gain of 2e-4 nats whose 95% interval spans zero.
    constraints = PlanConstraints(weight_bits=8, activation_bits=8, post_train_bits=4)
    draws = _draws(KUMAR, 200, 0.01, seed=1)
    plain = plan_search(kumar_loss(KUMAR), 1e19, constraints=constraints, draws=draws)
    ruled = plan_search(kumar_loss(KUMAR), 1e19, constraints=constraints, draws=draws, reference_bits=REFERENCE)
    assert plain.recommendation.kv_bits < 16
    choice = ruled.precision_choice
    assert choice is not None
    assert ruled.recommendation.kv_bits == 16.0
    assert choice.decided == "reference"
    assert choice.kept_reference == ("kv_bits",)
    assert choice.point_best[2] == plain.recommendation.kv_bits
    lo, hi = choice.point_best_gain_interval or (math.nan, math.nan)
    assert lo < 0 < hi
    assert 0 < choice.point_best_gain < hi


def test_a_narrower_width_with_a_gain_beyond_its_uncertainty_is_kept():
    # Under Kumar's cost model 7-bit training buys enough compute to lower the loss by 0.02 nats at 1e21 FLOPs,
    # with a 95% interval far above zero: the plan departs from 16 bits.
    result = plan_search(kumar_loss(KUMAR), 1e21, draws=_draws(KUMAR, 200, 0.01, seed=1), reference_bits=REFERENCE)
    choice = result.precision_choice
    assert choice is not None
    assert choice.decided == "departure"
    assert result.recommendation.weight_bits < 16
    assert choice.gain_interval is not None
    assert choice.gain_interval[0] > 0
    assert choice.chosen == choice.point_best


def test_without_draws_the_reference_precision_is_kept():
    result = plan_search(kumar_loss(KUMAR), 1e21, reference_bits=REFERENCE)
    choice = result.precision_choice
    assert choice is not None
    assert choice.decided == "no_draws"
    assert (result.recommendation.weight_bits, result.recommendation.kv_bits) == (16.0, 16.0)
    assert choice.point_best[0] < 16


def test_the_reference_is_the_widest_candidate_when_16_bits_is_not_allowed():
    params = {k: np.full((20, 1, 1), v) for k, v in KUMAR.items()}  # identical draws: no uncertainty at all
    result = plan_search(
        kumar_loss(KUMAR),
        1e21,
        constraints=PlanConstraints(bits_choices=(4, 6, 8)),
        draws=kumar_loss(params),
        tie_bits=True,
        reference_bits=REFERENCE,
    )
    choice = result.precision_choice
    assert choice is not None
    assert choice.reference == (8.0, 8.0, 8.0)
