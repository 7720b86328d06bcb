"""fits.laws against published results: Epoch's Chinchilla refit and Kumar's precision law."""

import hashlib

import numpy as np
import pytest

from fits.laws import (
    KUMAR_TABLE2,
    FitFailed,
    Observations,
    RunConfig,
    effective_params_ratio,
    fit_law,
    fit_point,
    kumar_synthetic,
    load_chinchilla_epoch,
    predict_loss,
)
from fits.laws.datasets import EPOCH_CSV

# Epoch AI (arXiv:2404.10102): grid-fit refit of the digitised data (docs/laws.md 1.1) and bootstrap 95% intervals.
EPOCH_GRID_FIT = {"E": 1.8172, "alpha": 0.3473, "beta": 0.3672}
EPOCH_GRID_HUBER = 1.0183e-3
EPOCH_INTERVALS = {
    "A": (285.2, 743.6),
    "B": (1042.4, 5810.3),
    "E": (1.769, 1.871),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}
# docs/laws.md 4.3: N_eff/N at tied P with Kumar's offsets (derived there from Table 2).
KUMAR_NEFF_TABLE = {4: 0.19, 5: 0.43, 6: 0.61, 7: 0.74, 8: 0.83, 12: 0.97, 16: 0.994}


@pytest.fixture(scope="module")
def epoch_fit():
    # Epoch's published fit is Huber on all 240 points: reproducing it means the same procedure, without the
    # screening rule (which leaves out 5 of these points; tests/planner/test_real_sweeps.py checks that fit).
    return fit_law("chinchilla", load_chinchilla_epoch(), n_bootstrap=200, seed=0, screen_outliers=False)


@pytest.fixture(scope="module")
def kumar_data():
    return kumar_synthetic(noise=0.005, seed=1)


@pytest.fixture(scope="module")
def kumar_fit(kumar_data):
    noisy, _ = kumar_data
    return fit_law("precision", noisy, n_bootstrap=8, seed=0)


def test_project_copy_of_epoch_data_is_byte_identical_to_upstream():
    digest = hashlib.sha256(EPOCH_CSV.read_bytes()).hexdigest()
    assert digest == "193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30"
    assert load_chinchilla_epoch().n_runs == 240


def test_epoch_refit_reproduces_grid_fit(epoch_fit):
    for name, value in EPOCH_GRID_FIT.items():
        assert epoch_fit.params[name] == pytest.approx(value, rel=0.01), name
    for name in ("A", "B"):
        lo, hi = EPOCH_INTERVALS[name]
        assert lo < epoch_fit.params[name] < hi, name
    # No worse than Epoch's 4,500-start L-BFGS-B grid (rounding of the published figure allowed).
    assert epoch_fit.metrics["huber_objective"] <= EPOCH_GRID_HUBER * (1 + 1e-4)
    assert epoch_fit.objective == "huber"
    assert epoch_fit.metrics["n_runs"] == 240


def test_epoch_bootstrap_intervals_overlap_published(epoch_fit):
    assert epoch_fit.draws.shape == (200, 5)
    for name, (lo, hi) in EPOCH_INTERVALS.items():
        ours_lo, ours_hi = epoch_fit.intervals[name]
        assert ours_lo < hi, (name, (ours_lo, ours_hi), (lo, hi))
        assert lo < ours_hi, (name, (ours_lo, ours_hi), (lo, hi))
        assert ours_lo <= epoch_fit.params[name] <= ours_hi


def test_kumar_table2_effective_params_match_derived_table():
    for bits, expected in KUMAR_NEFF_TABLE.items():
        assert effective_params_ratio(KUMAR_TABLE2, bits, bits, bits) == pytest.approx(expected, abs=0.006)
    # Table 2's offsets put 3-bit activations outside the law (docs/laws.md 4.3).
    assert np.isnan(effective_params_ratio(KUMAR_TABLE2, 16, 3, 16))


def test_kumar_synthetic_fit_predicts_held_out_1p7b(kumar_fit):
    _, clean = kumar_synthetic(noise=0.005, seed=2, n_values=(1.7e9,), d_values=(13e9, 26e9))
    params = kumar_fit.all_params
    bits = {"weight_bits": clean.weight_bits, "activation_bits": clean.activation_bits, "kv_bits": clean.kv_bits}
    pred = predict_loss("precision", params, RunConfig(n_params=clean.n_params, n_tokens=clean.n_tokens, **bits))
    np.testing.assert_array_less(np.abs(pred / clean.final_loss - 1.0), 0.01)
    r = clean.eval_run
    pred_ptq = predict_loss(
        "precision",
        params,
        RunConfig(
            n_params=clean.n_params[r],
            n_tokens=clean.n_tokens[r],
            post_train_bits=clean.eval_post_bits,
            **{k: v[r] for k, v in bits.items()},
        ),
    )
    np.testing.assert_array_less(np.abs(pred_ptq / clean.eval_loss - 1.0), 0.01)


@pytest.mark.parametrize("bits", [4, 6, 8, 16])
def test_kumar_synthetic_fit_recovers_effective_params(kumar_fit, bits):
    truth = effective_params_ratio(KUMAR_TABLE2, bits, bits, bits)
    fitted = effective_params_ratio(kumar_fit.all_params, bits, bits, bits)
    assert abs(fitted - truth) < 0.03


def test_kumar_synthetic_fit_is_complete(kumar_fit):
    for name in ("A", "B", "E", "alpha", "beta", "gamma_w", "gamma_a", "gamma_kv", "n_w", "n_a", "n_kv"):
        assert name in kumar_fit.params
    for name in ("C_T", "gamma_D", "gamma_N", "gamma_post"):
        assert name in kumar_fit.params
    assert kumar_fit.fixed == {"C_w": 1.0, "C_a": 1.0, "C_kv": 1.0, "n_post": 0.0}
    assert kumar_fit.backtest["n_held_out"] > 0
    assert kumar_fit.backtest["rmse_log"] < 0.02
    # The generating gammas, within a loose tolerance (0.5% noise on ~760 runs).
    for dim in ("w", "a"):
        assert kumar_fit.params[f"gamma_{dim}"] == pytest.approx(KUMAR_TABLE2[f"gamma_{dim}"], rel=0.15)


def _shuffled(data: Observations, seed: int) -> Observations:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(data.n_runs)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.shape[0])
    eperm = rng.permutation(data.n_evals)
    return Observations(
        n_params=data.n_params[perm],
        n_tokens=data.n_tokens[perm],
        weight_bits=data.weight_bits[perm],
        activation_bits=data.activation_bits[perm],
        kv_bits=data.kv_bits[perm],
        final_loss=data.final_loss[perm],
        eval_run=inverse[data.eval_run][eperm],
        eval_post_bits=data.eval_post_bits[eperm],
        eval_loss=data.eval_loss[eperm],
    )


def test_fit_does_not_depend_on_row_order(epoch_fit):
    shuffled = fit_law(
        "chinchilla", _shuffled(load_chinchilla_epoch(), 3), n_bootstrap=200, seed=0, screen_outliers=False
    )
    assert shuffled.params == epoch_fit.params
    np.testing.assert_array_equal(shuffled.draws, epoch_fit.draws)


def test_precision_fit_does_not_depend_on_row_order(kumar_data, kumar_fit):
    noisy, _ = kumar_data
    shuffled = fit_law("precision", _shuffled(noisy, 5), n_bootstrap=8, seed=0)
    assert shuffled.params == kumar_fit.params
    np.testing.assert_array_equal(shuffled.draws, kumar_fit.draws)


def _grid(n_values, d_values, **bits):
    n, d = np.meshgrid(n_values, d_values, indexing="ij")
    n, d = n.ravel(), d.ravel()
    loss = 1.8 + 480 * n**-0.35 + 2100 * d**-0.37
    return Observations.build(n_params=n, n_tokens=d, final_loss=loss, **{k: v(n) for k, v in bits.items()})


def test_single_model_size_fails_cleanly():
    with pytest.raises(FitFailed, match="no spread in N"):
        fit_point("chinchilla", _grid([1e8], np.geomspace(1e9, 1e11, 8)))


def test_single_token_count_fails_cleanly():
    with pytest.raises(FitFailed, match="no spread in D"):
        fit_point("chinchilla", _grid(np.geomspace(1e7, 1e9, 8), [1e10]))


def test_too_few_points_fail_cleanly():
    with pytest.raises(FitFailed, match="too few points"):
        fit_point("chinchilla", _grid([1e7, 1e8, 1e9], [1e9, 1e10]))


def test_precision_with_too_few_runs_for_its_parameters_fails_cleanly():
    data = _grid([1e7, 1e8, 1e9], [1e9, 1e10, 1e11], weight_bits=lambda n: np.where(n > 5e7, 8.0, 4.0))
    # 9 runs; weights take two values, so 6 free parameters (E, A, B, alpha, beta, gamma_w): enough.
    fit_point("precision", data)
    data3 = _grid(
        [1e7, 1e8, 1e9],
        [1e9, 1e10, 1e11],
        weight_bits=lambda n: np.select([n < 5e7, n < 5e8], [4.0, 6.0], 8.0),
        activation_bits=lambda n: np.select([n < 5e7, n < 5e8], [6.0, 8.0], 16.0),
    )
    # Three levels in two dimensions: 5 + 2 + 2 = 9 free parameters need 11 runs; 9 is too few.
    with pytest.raises(FitFailed, match="too few points"):
        fit_point("precision", data3)


def test_constant_bits_are_held_at_factor_one_and_no_ptq_without_evaluations():
    data = _grid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5))
    fit = fit_law("precision", data, n_bootstrap=4)
    assert fit.fixed == {"gamma_w": 0.0, "n_w": 0.0, "gamma_a": 0.0, "n_a": 0.0, "gamma_kv": 0.0, "n_kv": 0.0}
    assert not any(name.startswith(("gamma_", "n_", "C_")) for name in fit.params)
    assert any("never vary" in w for w in fit.warnings)
    assert fit.params["alpha"] == pytest.approx(0.35, rel=1e-3)


def test_runs_outside_the_domain_are_reported_and_not_fitted(kumar_data):
    noisy, _ = kumar_data
    # Add 3-bit-activation runs with absurd losses: the law cannot describe them, so they must not be fitted.
    three = noisy.activation_bits == 4.0
    extra = noisy.subset(three)
    bad = Observations(
        n_params=np.concatenate([noisy.n_params, extra.n_params]),
        n_tokens=np.concatenate([noisy.n_tokens, extra.n_tokens]),
        weight_bits=np.concatenate([noisy.weight_bits, extra.weight_bits]),
        activation_bits=np.concatenate([noisy.activation_bits, np.full(extra.n_runs, 3.0)]),
        kv_bits=np.concatenate([noisy.kv_bits, extra.kv_bits]),
        final_loss=np.concatenate([noisy.final_loss, np.full(extra.n_runs, 9.0)]),
        eval_run=noisy.eval_run,
        eval_post_bits=noisy.eval_post_bits,
        eval_loss=noisy.eval_loss,
    )
    point = fit_point("precision", bad, seed=0)
    assert point.metrics["n_runs"] == noisy.n_runs
    assert any("outside the law's domain" in w and "/3/" in w for w in point.warnings)
