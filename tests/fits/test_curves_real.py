"""Forecasts on real, held-out curves (docs/curves.md, "Measured"; bench/curves.py prints the figures).

Every forecast sees only the first part of its run; the rest never enters the fit. The MultiPower 25M and 100M
curves are the design set (law, interval rule, lending threshold); 400M and OLMo's ladder were held out of every
choice, and the bounds below are the figures measured on them once the design was fixed, with a little room.
"""

import pytest

from fits.laws.curve_data import load_multipower_curves
from fits.laws.curve_validation import (
    DESIGN_SIZES,
    HELD_OUT_SIZES,
    Case,
    multipower_cases,
    multipower_cross_size_cases,
    olmo_cases,
    run_case,
    summarise,
)
from fits.laws.curves import fit_power


@pytest.fixture(scope="module")
def held_out():
    return [run_case(case) for case in multipower_cases(HELD_OUT_SIZES)]


@pytest.mark.parametrize(("fraction", "issue"), [(0.25, 0.108), (0.5, 0.054)])
def test_the_schedule_blind_baseline_is_off_as_the_issue_measured(fraction, issue):
    curve = load_multipower_curves("400M")["cosine_72000"]
    seen = curve.steps <= fraction * curve.plan.total_steps

    fit = fit_power(curve.steps[seen], curve.loss[seen], max_points=100_000)  # every raw point, as the issue did

    assert fit.predict(curve.final_step) - curve.final_loss == pytest.approx(issue, abs=0.002)


@pytest.mark.parametrize(("fraction", "bound"), [(0.25, 0.015), (0.5, 0.003)])
def test_one_short_annealed_run_brings_400m_cosine_72k_within_the_issue_figures(fraction, bound):
    curves = load_multipower_curves("400M")
    case = Case("multipower", "400M", curves["cosine_72000"], (curves["cosine_24000"],), fraction)

    outcome = run_case(case)

    assert outcome.forecast.lenders == ["400M/cosine_24000"]
    assert abs(outcome.error) < bound  # the issue: about 0.01 from 25%, under 0.003 from 50%


def test_no_lender_shares_history_with_its_target():
    for case in multipower_cases(HELD_OUT_SIZES, fractions=(0.25,)):
        for lender in case.family:
            assert not (case.target.trunk and case.target.trunk in (lender.trunk, lender.name)), case.label


@pytest.mark.parametrize(("fraction", "mae_bound", "worst_bound"), [(0.25, 0.015, 0.035), (0.5, 0.010, 0.032)])
def test_multipower_held_out_forecasts_with_one_decayed_lender(held_out, fraction, mae_bound, worst_bound):
    outcomes = [o for o in held_out if o.case.fraction == fraction]

    s = summarise(outcomes)

    # 14 forecasts: 4 400M targets x every admissible lender. Measured: MAE 0.0111 from 25% (the issue's target is
    # 0.015) and 0.0086 from 50% (the issue's target, 0.005, is not met).
    assert s["n_made"] == s["n"] == 14
    assert s["mae"] <= mae_bound
    assert s["worst"] <= worst_bound
    assert s["baseline_mae"] >= 8 * s["mae"]


def test_the_design_sets_one_lender_intervals_cover_as_calibrated():
    outcomes = [run_case(case) for case in multipower_cases(DESIGN_SIZES)]

    # MODEL_ERROR_FRACTION is the split-conformal choice on these 56 forecasts: at least ceil(0.95 x 57) = 55 of
    # them inside their 95% intervals.
    assert len(outcomes) == 56
    assert sum(o.covered() for o in outcomes) >= 55


def test_multipower_held_out_intervals_cover_most_finals(held_out):
    s = summarise(held_out)

    # Nominal 95%; measured 0.89 over the 28 held-out 400M forecasts (0.86 from 25%, 0.93 from 50%): below nominal,
    # the misses being the WSD targets lent a cosine run's annealing (docs/curves.md, "Known limits").
    assert 0.85 <= s["coverage"] <= 1.0


def test_the_drawn_path_follows_the_unseen_curves_and_its_band_holds_most_of_them(held_out):
    import numpy as np

    coverage, errors = [], []
    for outcome in held_out:
        path = {k: np.array(v) for k, v in outcome.forecast.path.items()}
        target = outcome.case.target
        actual = np.interp(path["step"], target.steps, target.loss)  # the part of the run the fit never saw
        coverage.append(np.mean((path["low"] <= actual) & (actual <= path["high"])))
        errors.append(np.mean(np.abs(path["loss"] - actual)))

    # The band is the end point's interval carried back along the path (fits.laws.forecast._path); its rule was
    # chosen looking at these 400M cases, so this is a check, not a held-out result. Measured: mean coverage 0.87
    # of the path's steps (0.90 on the design 100M), mean path error 0.0068 nats; a few WSD targets from 25% are
    # mostly outside (their stable phase drifts from a cosine lender's law).
    assert np.mean(coverage) >= 0.8
    assert np.mean(errors) < 0.01


def test_annealing_borrowed_from_a_smaller_size_forecasts_400m_within_0_02():
    outcomes = [run_case(c) for c in multipower_cross_size_cases("400M", ("100M",), fractions=(0.5,))]

    for o in outcomes:
        assert o.forecast.lenders
        assert all(lender.startswith("100M/") for lender in o.forecast.lenders)
        assert any("borrowed from other sizes (100M)" in w for w in o.forecast.warnings)
    # Measured: MAE 0.0097, worst 0.018 (the same-size figure from 50% is 0.0086; docs/curves.md).
    assert max(abs(o.error) for o in outcomes) < 0.02
    assert summarise(outcomes)["mae"] < 0.013


def test_olmo_3b_runs_forecast_from_half_their_steps():
    cases = [c for c in olmo_cases() if c.target.name in ("3B-0.5xC", "3B-2xC", "3B-10xC")]

    outcomes = [run_case(c) for c in cases]

    assert all(o.forecast.ok for o in outcomes)
    assert max(abs(o.error) for o in outcomes) <= 0.01  # measured 0.0077, 0.0020, 0.0038
    assert summarise(outcomes)["baseline_mae"] >= 5 * summarise(outcomes)["mae"]


@pytest.mark.slow
def test_olmo_ladder_forecast_from_half_of_every_run():
    outcomes = [run_case(c) for c in olmo_cases()]
    by_size = {size: summarise([o for o in outcomes if o.case.size == size]) for size in ("190M", "1B", "3B")}

    s = summarise(outcomes)

    # Measured with the default (annealing) law: MAE 0.0122 over the 30 runs, 0.020 at 190M down to 0.0033 at 3B;
    # the multi-power law gets 0.0081 (docs/curves.md). Coverage of the 95% intervals: 0.90 (the misses: three 0.5xC
    # runs, shorter than every run their backtests were made on).
    assert s["n_made"] == 30
    assert s["mae"] <= 0.014
    assert by_size["190M"]["mae"] > by_size["1B"]["mae"] > by_size["3B"]["mae"]
    assert s["baseline_mae"] >= 3 * s["mae"]  # the baseline's 0.049
    assert s["coverage"] >= 0.85
