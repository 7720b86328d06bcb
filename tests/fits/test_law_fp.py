"""The floating-point law of Sun et al. 2025 and the law comparison, in the pure engine.

Data generated from one law must be ranked first by backtest error: Sun's law on floating-point formats,
Kumar's law on Kumar's grid. The constants come from tests/published.py (docs/laws.md), not from our code.
"""

import numpy as np
import pytest

from fits.laws import (
    FitFailed,
    Observations,
    RunConfig,
    fit_law,
    fit_point,
    fp_layout,
    fp_loss,
    fp_synthetic,
    kumar_synthetic,
    predict_loss,
)
from fits.ranking import LawFit, rank_laws
from tests.published import KUMAR, SUN

BLOCK = 128.0  # scaling block size assumed for the synthetic runs; the law absorbs log2(block) into gamma
SUN_OURS = {**SUN, "gamma": SUN["gamma"] / np.log2(BLOCK)}


def sun_synthetic(*, noise: float, seed: int) -> Observations:
    return fp_synthetic(noise=noise, seed=seed, params=SUN_OURS)


def ranking_of(data: Observations):
    fits: list[LawFit] = []
    for law in ("chinchilla", "precision", "fp"):
        point = fit_point(law, data, seed=0)
        fits.append(
            LawFit(
                law=law,
                fit_id=len(fits) + 1,
                version=1,
                backtest=point.backtest,
                n_params_fitted=len(point.params),
                n_runs=int(point.metrics["n_runs"]),
                warnings=tuple(point.warnings),
                n_screened=len(point.screened),
            )
        )
    return rank_laws(fits)


def test_best_layout_matches_the_paper_e2m1_e4m3_e8m7():
    # Sun et al. (laws.md 10.2): the optimal layouts at FP4, FP8 and FP16 are E2M1, E4M3 and E8M7.
    e, m = fp_layout(SUN, np.array([4.0, 8.0, 16.0]))
    assert e.tolist() == [2.0, 4.0, 8.0]
    assert m.tolist() == [1.0, 3.0, 7.0]
    # A fractional width takes the continuous optimum E = delta*P/(delta + nu) - 0.5.
    e_frac, m_frac = fp_layout(SUN, 6.5)
    assert float(e_frac) == pytest.approx(SUN["delta"] * 6.5 / (SUN["delta"] + SUN["nu"]) - 0.5)
    assert float(e_frac + m_frac) == pytest.approx(5.5)


def test_exponent_bits_are_worth_slightly_more_than_mantissa_bits():
    # delta > nu in Table 2: at the same total width, E3M2 beats E2M3 (the paper's "exponent bits matter more").
    kw = {"n_params": 1e8, "n_tokens": 5e10}
    assert fp_loss(SUN_OURS, **kw, exponent_bits=3, mantissa_bits=2) < fp_loss(
        SUN_OURS, **kw, exponent_bits=2, mantissa_bits=3
    )


def test_noise_free_data_recovers_suns_constants():
    data = sun_synthetic(noise=0.0, seed=0)
    point = fit_point("fp", data, seed=0)
    for name in ("E", "A", "B", "alpha", "beta", "gamma", "delta", "nu"):
        assert point.params[name] == pytest.approx(SUN_OURS[name], rel=0.02), name
    assert point.metrics["rmse_log"] < 1e-4


def test_bootstrap_intervals_cover_the_truth_on_noisy_data():
    fit = fit_law("fp", sun_synthetic(noise=0.003, seed=5), n_bootstrap=24, seed=1)
    for name in ("delta", "nu", "alpha", "beta"):
        lo, hi = fit.intervals[name]
        assert lo < hi
        assert lo * 0.9 <= SUN_OURS[name] <= hi * 1.1, (name, lo, hi)


def test_data_from_the_fp_law_ranks_the_fp_law_first():
    ranking = ranking_of(sun_synthetic(noise=0.002, seed=0))
    assert ranking.best == "fp"
    assert ranking.entries[0].law == "fp"
    scores = {e.law: e.score for e in ranking.entries}
    assert scores["fp"] < scores["chinchilla"]


def test_data_from_kumars_law_ranks_kumars_law_first():
    noisy, _ = kumar_synthetic(params={**KUMAR, "n_post": 0.0}, noise=0.005, seed=1)
    # Give every run a floating-point format so the fp law applies: the layout Sun's law rates best at its width.
    e, m = fp_layout(SUN, noisy.weight_bits)
    data = Observations(**{**noisy.__dict__, "exponent_bits": e, "mantissa_bits": m})
    ranking = ranking_of(data)
    assert ranking.best == "precision"
    assert [entry.law for entry in ranking.entries][0] == "precision"


def test_runs_without_a_format_are_left_out_with_a_warning():
    data = sun_synthetic(noise=0.002, seed=2)
    e = data.exponent_bits.copy()
    m = data.mantissa_bits.copy()
    e[:7] = np.nan
    m[:7] = np.nan
    point = fit_point("fp", Observations(**{**data.__dict__, "exponent_bits": e, "mantissa_bits": m}))
    assert point.metrics["n_runs"] == data.n_runs - 7
    assert any("7 of 240 runs without exponent_bits and mantissa_bits" in w for w in point.warnings)


def test_no_run_with_a_format_fails_with_the_reason():
    data = Observations.build(
        n_params=[1e8, 2e8, 4e8] * 3, n_tokens=[1e9] * 3 + [2e9] * 3 + [4e9] * 3, final_loss=[3.0] * 9
    )
    with pytest.raises(FitFailed, match="exponent_bits and mantissa_bits"):
        fit_point("fp", data)


def test_a_single_exponent_width_holds_delta_at_suns_value():
    data = sun_synthetic(noise=0.002, seed=3)
    two = data.exponent_bits == 2
    point = fit_point("fp", data.subset(two))
    assert "delta" not in point.params
    assert point.fixed["delta"] == SUN["delta"]
    assert "nu" in point.params
    assert any("exponent bits never vary (2)" in w for w in point.warnings)


def test_prediction_without_a_format_uses_the_best_layout_and_refuses_ptq():
    kw = {"n_params": 2e8, "n_tokens": 2e10}
    by_width = predict_loss("fp", SUN_OURS, RunConfig(**kw, weight_bits=8.0))
    explicit = predict_loss("fp", SUN_OURS, RunConfig(**kw, weight_bits=8.0, exponent_bits=4.0, mantissa_bits=3.0))
    assert float(by_width) == pytest.approx(float(explicit))
    with pytest.raises(ValueError, match="no PTQ term"):
        predict_loss("fp", SUN_OURS, RunConfig(**kw, weight_bits=8.0, post_train_bits=4.0))
