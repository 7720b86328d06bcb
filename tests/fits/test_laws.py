"""fits.laws unit tests: gradients, bootstrap chunking, recovery of known parameters, prediction."""

import json

import numpy as np
import pytest

from fits.laws import (
    KUMAR_TABLE2,
    LAWS,
    FitFailed,
    Observations,
    RunConfig,
    assemble_fit,
    bootstrap_chunk,
    effective_params_ratio,
    fit_law,
    fit_point,
    in_domain,
    kumar_synthetic,
    predict_loss,
    predict_with_interval,
)
from fits.laws.fitting import (
    BaseSpec,
    DimSpec,
    _base_inputs,
    _base_model,
    _ptq_inputs,
    _ptq_model,
)
from fits.laws.prediction import predict_loss_draws
from tests.published import EPOCH

TRUTH = EPOCH  # Epoch's published set, as the generating parameters


def _chinchilla_grid(noise: float = 0.0, seed: int = 0) -> Observations:
    grid_n, grid_d = np.meshgrid(np.geomspace(5e7, 1e10, 7), np.geomspace(1e9, 3e11, 7), indexing="ij")
    n, d = grid_n.ravel(), grid_d.ravel()
    loss = predict_loss("chinchilla", TRUTH, RunConfig(n_params=n, n_tokens=d))
    loss = loss * (1 + noise * np.random.default_rng(seed).standard_normal(loss.shape))
    return Observations.build(n_params=n, n_tokens=d, final_loss=loss)


@pytest.fixture(scope="module")
def kumar_small():
    noisy, _ = kumar_synthetic(noise=0.005, seed=3, d_values=(1.5e9, 6e9, 26e9))
    return noisy


def _numeric_jacobian(model, theta, eps=1e-6):
    cols = []
    for j in range(theta.shape[0]):
        up, down = theta.copy(), theta.copy()
        up[j] += eps
        down[j] -= eps
        cols.append((model(up)[0] - model(down)[0]) / (2 * eps))
    return np.column_stack(cols)


@pytest.mark.parametrize("tie", [False, True])
def test_base_model_analytic_jacobian_matches_finite_differences(kumar_small, tie):
    spec = BaseSpec(
        tie=tie,
        dims=(DimSpec("w", "free", 3.0, 0.0), DimSpec("a", "gamma", 4.0, 1.4072), DimSpec("kv", "free", 4.0, 0.0)),
    )
    model = _base_model(spec, _base_inputs(kumar_small))
    theta = np.array([1.0, 8.0, 9.5, 0.45] + ([] if tie else [0.52]) + [0.9, -0.4, 0.7, -0.1, 0.2])
    _, jac = model(theta)
    np.testing.assert_allclose(jac, _numeric_jacobian(model, theta), rtol=1e-5, atol=1e-8)


def test_ptq_model_analytic_jacobian_matches_finite_differences(kumar_small):
    point = fit_point("precision", kumar_small, seed=0)
    inp = _ptq_inputs(point.data, point.base_spec, point.theta_base, point.eval_mask)
    model = _ptq_model(inp)
    theta = np.array([-2.5, 0.45, 0.3, -0.4])
    _, jac = model(theta)
    np.testing.assert_allclose(jac, _numeric_jacobian(model, theta), rtol=1e-5, atol=1e-9)


def test_fit_recovers_known_chinchilla_parameters_from_clean_data():
    fit = fit_point("chinchilla", _chinchilla_grid(), objective="least_squares")
    for name, value in TRUTH.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-3), name


def test_fit_recovers_known_exponents_from_noisy_data_within_intervals():
    fit = fit_law("chinchilla", _chinchilla_grid(noise=0.003, seed=4), n_bootstrap=60, seed=1)
    for name in ("E", "alpha", "beta"):
        assert fit.params[name] == pytest.approx(TRUTH[name], rel=0.05), name
        lo, hi = fit.intervals[name]
        assert lo <= TRUTH[name] <= hi, name


def test_tied_exponents_report_equal_alpha_and_beta():
    fit = fit_point("chinchilla", _chinchilla_grid(), tie_exponents=True)
    assert fit.params["alpha"] == fit.params["beta"]
    assert fit.params["alpha"] == pytest.approx(0.357, abs=0.02)  # between the generating 0.3478 and 0.3658


def test_chunked_bootstrap_equals_monolithic(kumar_small):
    full = fit_law("precision", kumar_small, n_bootstrap=6, seed=7)
    point = fit_point("precision", kumar_small, seed=7)
    chunks = [bootstrap_chunk(point, start=s, count=c) for s, c in ((0, 2), (2, 1), (3, 3))]
    assembled = assemble_fit(point, np.vstack(chunks))
    np.testing.assert_array_equal(assembled.draws, full.draws)
    assert assembled.intervals == full.intervals
    assert assembled.params == full.params
    assert full.draws.shape == (6, len(full.draw_names))


def test_bootstrap_seed_changes_draws():
    data = _chinchilla_grid(noise=0.003)
    a = fit_law("chinchilla", data, n_bootstrap=3, seed=1)
    b = fit_law("chinchilla", data, n_bootstrap=3, seed=2)
    assert not np.array_equal(a.draws, b.draws)


def test_least_squares_objective_is_recorded():
    fit = fit_law("chinchilla", _chinchilla_grid(noise=0.002), objective="least_squares", n_bootstrap=2)
    assert fit.objective == "least_squares"


def test_unknown_law_and_objective_are_rejected():
    with pytest.raises(ValueError, match="unknown law"):
        fit_point("kaplan", _chinchilla_grid())
    with pytest.raises(ValueError, match="unknown objective"):
        fit_point("chinchilla", _chinchilla_grid(), objective="l1")


def test_observations_validate_inputs():
    with pytest.raises(ValueError, match="non-finite"):
        Observations.build(n_params=[1e8, np.nan], n_tokens=[1e9, 1e9], final_loss=[3.0, 3.0])
    with pytest.raises(ValueError, match="expected 2"):
        Observations.build(n_params=[1e8, 2e8], n_tokens=[1e9], final_loss=[3.0, 3.0])
    with pytest.raises(ValueError, match="does not exist"):
        Observations.build(
            n_params=[1e8], n_tokens=[1e9], final_loss=[3.0], eval_run=[1], eval_post_bits=[4], eval_loss=[3.1]
        )


def test_empty_data_fails_cleanly():
    with pytest.raises(FitFailed, match="no runs"):
        fit_point("chinchilla", Observations.build(n_params=[], n_tokens=[], final_loss=[]))


def test_as_dict_is_json_serialisable():
    fit = fit_law("chinchilla", _chinchilla_grid(noise=0.003), n_bootstrap=3)
    out = json.loads(json.dumps(fit.as_dict(), allow_nan=False))
    assert set(out["params"]) == {"A", "B", "E", "alpha", "beta"}
    assert len(out["draws"]) == 3
    assert len(out["draws"][0]) == 5
    assert set(out["metrics"]) >= {"n_runs", "n_points", "r2", "rmse_log", "huber_objective"}
    assert set(out["backtest"]) == {
        "rmse_log",
        "mean_signed_error",
        "n_held_out",
        "rmse_log_runs",
        "n_held_out_runs",
        "scheme",
        "held_out_n_params",
        "n_sizes_fitted",
        "n_screened",
    }
    assert out["screened"] == []
    assert out["backtest"]["rmse_log_runs"] == pytest.approx(out["backtest"]["rmse_log"])  # no PTQ term


def test_predict_loss_broadcasts_and_marks_out_of_domain():
    n = np.geomspace(1e8, 1e10, 4)[:, None]
    bits = np.array([3.0, 4.0, 8.0, 16.0])[None, :]
    out = predict_loss("precision", KUMAR_TABLE2, RunConfig(n_params=n, n_tokens=2e10, activation_bits=bits))
    assert out.shape == (4, 4)
    assert np.all(np.isnan(out[:, 0]))  # 3-bit activations lie outside Kumar's law
    assert np.all(np.isfinite(out[:, 1:]))
    assert np.all(np.diff(out[:, 1:], axis=1) < 0)  # more activation bits, lower loss
    assert in_domain(KUMAR_TABLE2, 16.0, bits, 16.0).tolist() == [[False, True, True, True]]


def test_predict_loss_ptq_term_follows_kumar_eq_9():
    p = {**KUMAR_TABLE2, "n_post": 0.0}
    base = predict_loss("precision", p, RunConfig(n_params=3e7, n_tokens=2.6e10))
    post = predict_loss(
        "precision", p, RunConfig(n_params=3e7, n_tokens=2.6e10, post_train_bits=[3.0, 4.0, 6.0, np.nan])
    )
    delta = post - base
    # docs/laws.md 4.1, "without b" column (derived; 16-bit training so every robustness factor is ~1).
    assert delta[:3] == pytest.approx([0.19, 0.035, 0.001], rel=0.08, abs=2e-4)
    assert delta[3] == 0.0
    # P_post above a training precision is outside the PTQ law.
    assert np.isnan(
        predict_loss("precision", p, RunConfig(n_params=3e7, n_tokens=2.6e10, activation_bits=4.0, post_train_bits=6.0))
    )
    # A fit without evaluations has no PTQ term: asking for one is an error, not a silent zero.
    no_ptq = {k: v for k, v in p.items() if k not in ("C_T", "gamma_D", "gamma_N", "gamma_post")}
    with pytest.raises(ValueError, match="no PTQ term"):
        predict_loss("precision", no_ptq, RunConfig(n_params=3e7, n_tokens=2.6e10, post_train_bits=4.0))


def test_effective_params_ratio_without_offsets_matches_laws_md():
    p = {k: v for k, v in KUMAR_TABLE2.items() if not k.startswith("n_")}
    got = effective_params_ratio(p, [4, 8, 16], [4, 8, 16], [4, 8, 16])
    assert got == pytest.approx([0.64, 0.92, 0.997], abs=0.006)


def test_predict_loss_draws_matches_per_draw_predictions(kumar_small):
    fit = fit_law("precision", kumar_small, n_bootstrap=4, seed=0)
    n = np.array([1e8, 1e9])[:, None]
    w = np.array([4.0, 8.0, 16.0])[None, :]
    many = predict_loss_draws(
        "precision",
        fit.draws,
        fit.draw_names,
        fit.fixed,
        RunConfig(n_params=n, n_tokens=1e10, weight_bits=w, post_train_bits=3.0),
    )
    assert many.shape == (4, 2, 3)
    for i, row in enumerate(fit.draws):
        one = predict_loss(
            "precision",
            {**fit.fixed, **dict(zip(fit.draw_names, row, strict=True))},
            RunConfig(n_params=n, n_tokens=1e10, weight_bits=w, post_train_bits=3.0),
        )
        np.testing.assert_allclose(many[i], one, rtol=1e-12)


def test_predict_with_interval_reports_extrapolation(kumar_small):
    fit = fit_law("precision", kumar_small, n_bootstrap=6, seed=0)
    pred = predict_with_interval(fit, RunConfig(n_params=1.7e9, n_tokens=2.6e10, weight_bits=2.5, post_train_bits=2.0))
    assert pred.extrapolation["n_params_ratio"] == pytest.approx(1.7e9 / 220e6)
    assert pred.extrapolation["n_tokens_ratio"] == pytest.approx(1.0)
    assert set(pred.extrapolation["bits_outside_observed"]) == {"weight_bits", "post_train_bits"}
    inside = predict_with_interval(fit, RunConfig(n_params=1e8, n_tokens=6e9, weight_bits=8.0))
    lo, hi = inside.interval
    assert lo <= inside.loss <= hi
    assert inside.extrapolation["bits_outside_observed"] == []


def test_laws_registry_names_match_the_api():
    from fits.models import Fit

    assert set(LAWS) == {"chinchilla", "precision", "fp"}
    assert [name for name, _ in Fit._meta.get_field("law").choices] == list(LAWS)  # the model's choices follow
    assert all(LAWS[name].name == name for name in LAWS)


def test_parameter_on_a_bound_is_reported():
    data = _chinchilla_grid()
    no_floor = Observations.build(
        n_params=data.n_params, n_tokens=data.n_tokens, final_loss=data.final_loss - TRUTH["E"]
    )
    fit = fit_point("chinchilla", no_floor)
    assert "E ended on its lower bound (0.0001)" in fit.warnings


def test_constant_low_bits_are_not_screened_out():
    # All runs at 3-bit activations: the dimension never varies, so it is held at factor 1 and nothing is dropped.
    data = _chinchilla_grid()
    const = Observations.build(
        n_params=data.n_params, n_tokens=data.n_tokens, final_loss=data.final_loss, activation_bits=[3.0] * 49
    )
    fit = fit_point("precision", const)
    assert fit.metrics["n_runs"] == 49
    assert fit.fixed["gamma_a"] == 0.0
    assert fit.params["alpha"] == pytest.approx(TRUTH["alpha"], rel=1e-3)


def test_zero_draws_give_no_intervals_and_say_so():
    fit = fit_law("chinchilla", _chinchilla_grid(noise=0.003), n_bootstrap=0)
    assert fit.intervals == {}
    assert fit.draws.shape == (0, 5)
    assert any("no bootstrap intervals" in w for w in fit.warnings)


def test_chinchilla_prediction_interval_ignores_bits():
    fit = fit_law("chinchilla", _chinchilla_grid(noise=0.003), n_bootstrap=20)
    pred = predict_with_interval(fit, RunConfig(n_params=[1e9, 1e11], n_tokens=2e11, weight_bits=4.0))
    lo, hi = pred.interval
    assert np.all(lo < pred.loss)
    assert np.all(pred.loss < hi)
    assert (hi - lo)[1] > (hi - lo)[0]  # wider further out
    assert pred.extrapolation["n_params_ratio"] == pytest.approx(10.0)
    assert pred.extrapolation["bits_outside_observed"] == []
