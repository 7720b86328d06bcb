"""fits.laws.forecast: forecasts of a running run (lending rule, reasons, interval, JSON) and the verdict against
the family's scaling law. Synthetic families from the annealing law; real curves are in test_curves_real.py."""

import json
import math

import numpy as np
import pytest

from fits.laws.curves import MAX_POINTS_PER_RUN, annealing_loss
from fits.laws.forecast import (
    MIN_TARGET_POINTS,
    MODEL_ERROR_FRACTION,
    FamilyRun,
    choose_fit_runs,
    compare_with_law,
    forecast_loss,
)
from fits.laws.schedules import ScheduleSpec, build_schedule

PEAK = 1e-3
TRUE = {"L0": 2.0, "A": 30.0, "alpha": 0.5, "C": 2e-4}


def schedule(decay="cosine", total=20000, **kw):
    return build_schedule(ScheduleSpec(total, PEAK, 500, decay, final_lr=kw.pop("final_lr", 1e-4), **kw))


def run(name, sched, *, upto=None, group="1B", lineage="", every=50.0, noise=0.001, seed=0, params=TRUE):
    end = sched.total_steps if upto is None else upto
    steps = np.arange(every, end + 1, every)
    rng = np.random.default_rng(seed)
    loss = annealing_loss(params, sched, steps, lr_scale=PEAK) + noise * rng.standard_normal(steps.shape)
    return FamilyRun(run=name, group=group, steps=steps, loss=loss, schedule=sched, lineage=lineage)


def truth(sched, step):
    return float(annealing_loss(TRUE, sched, [step], lr_scale=PEAK)[0])


def test_a_wsd_run_before_its_decay_is_forecast_with_the_annealing_a_cosine_run_lends():
    wsd = schedule("linear", decay_start=16000)
    target = run("wsd", wsd, upto=8000)
    lender = run("cosine", schedule(), seed=1)

    fc = forecast_loss(target, [lender])

    assert fc.ok
    assert fc.lenders == ["cosine"]
    assert fc.fraction_seen == pytest.approx(0.4)
    assert fc.loss == pytest.approx(truth(wsd, 20000), abs=0.003)
    assert fc.interval[0] < truth(wsd, 20000) < fc.interval[1]
    # The schedule-blind baseline cannot see the decay coming.
    assert fc.baseline_loss - truth(wsd, 20000) > 0.05


def test_without_a_decayed_run_in_the_family_there_is_no_forecast_and_the_reason_says_why():
    target = run("wsd", schedule("linear", decay_start=16000), upto=8000)
    constant = run("constant", schedule("constant"), seed=1)

    fc = forecast_loss(target, [constant])

    assert not fc.ok
    assert fc.reason.startswith("no decay seen in the family yet")
    assert fc.loss is None
    assert fc.interval is None
    assert fc.fit_runs == ["wsd", "constant"]


def test_a_run_with_no_decay_ahead_is_forecast_from_its_own_curve():
    sched = schedule("constant")

    fc = forecast_loss(run("constant", sched, upto=10000), [])

    assert fc.ok
    assert fc.lenders == []
    assert fc.loss == pytest.approx(truth(sched, 20000), abs=0.003)


def test_a_run_that_has_decayed_lends_to_itself():
    sched = schedule()

    fc = forecast_loss(run("cosine", sched, upto=16000), [])

    assert fc.ok
    assert fc.lenders == ["cosine"]
    assert fc.loss == pytest.approx(truth(sched, 20000), abs=0.003)


def test_a_run_seen_to_its_end_draws_a_path_whose_band_is_its_interval():
    sched = schedule()

    fc = forecast_loss(run("cosine", sched, noise=0.01), [])  # noisy: the fit's misfit is not negligible

    assert fc.ok
    assert fc.path["low"][-1] == pytest.approx(fc.interval[0])
    assert fc.path["high"][-1] == pytest.approx(fc.interval[1])


def test_too_few_points_after_warmup_is_a_reason():
    target = run("late", schedule(), upto=700, every=100.0)  # warmup ends at step 500: two points after it

    fc = forecast_loss(target, [run("cosine", schedule(), seed=1)])

    assert not fc.ok
    assert fc.reason.startswith("too few points")
    assert str(MIN_TARGET_POINTS) in fc.reason


def test_runs_that_share_history_with_the_target_never_lend():
    target = run("wsd-a", schedule("linear", decay_start=16000), upto=8000, lineage="trunk")
    sibling = run("wsd-b", schedule("step", decay_start=12000), lineage="trunk", seed=1)

    fc = forecast_loss(target, [sibling])

    assert not fc.ok
    assert "no decay seen" in fc.reason
    assert choose_fit_runs(target, [sibling]) == []


def test_the_target_size_lends_first_and_other_sizes_only_when_it_has_no_decayed_run():
    target = run("t", schedule("linear", decay_start=16000), upto=8000, group="1B")
    same = run("same", schedule(), group="1B", seed=1)
    same_constant = run("same-const", schedule("constant"), group="1B", seed=2)
    other = run("other", schedule(), group="7B", seed=3)

    assert [r.run for r in choose_fit_runs(target, [other, same_constant, same])] == ["same", "same-const"]
    assert [r.run for r in choose_fit_runs(target, [other, same_constant])] == ["same-const", "other"]

    fc = forecast_loss(target, [other, same_constant])

    assert fc.ok
    assert fc.lenders == ["other"]
    assert any("borrowed from other sizes (7B)" in w for w in fc.warnings)


def test_a_forecast_is_json_serialisable_and_bounded_in_points():
    target = run("t", schedule("linear", decay_start=16000), upto=10000, every=1.0)  # 10,000 points
    lender = run("cosine", schedule(), every=1.0, seed=1)

    fc = forecast_loss(target, [lender])

    payload = json.loads(json.dumps(fc.as_dict()))
    assert payload["status"] == "ok"
    assert payload["lenders"] == ["cosine"]
    assert payload["fit_runs"] == ["t", "cosine"]
    assert fc.details["fit_points"] <= 2 * MAX_POINTS_PER_RUN


def _half_width(fc):
    return (fc.interval[1] - fc.interval[0]) / 2


def test_backtest_errors_widen_the_interval_by_student_t_with_as_many_degrees_of_freedom_as_backtests():
    # The two finished runs' decays remove different amounts (C 1e-4 and 4e-4): each backtest, lent the other's
    # annealing, misses by far more than the design set's rule allows for.
    target = run("t", schedule("linear", decay_start=16000), upto=10000)
    family = [
        run("cos-20k", schedule(), seed=1, params={**TRUE, "C": 1e-4}),
        run("cos-10k", schedule(total=10000), seed=2, params={**TRUE, "C": 4e-4}),
    ]

    fc = forecast_loss(target, family)

    d = fc.details
    assert d["backtest_runs_annealing"] == d["backtests"] == 2.0
    assert d["sd_model_from_backtest"] == 1.0
    assert d["sd_model"] == pytest.approx(d["backtest_rms_annealing"])
    assert d["model_multiplier"] == pytest.approx(4.3027, abs=1e-4)  # Student's t, 2 dof, 97.5%
    z = 1.959964
    assert _half_width(fc) == pytest.approx(math.hypot(z * d["sd_parameters"], 4.3027 * d["sd_model"]), rel=1e-4)
    assert fc.sd == pytest.approx(_half_width(fc) / z)


def test_small_backtest_errors_do_not_narrow_the_interval_below_the_design_sets_rule():
    target = run("t", schedule("linear", decay_start=16000), upto=10000)
    family = [run("cos-20k", schedule(), seed=1), run("cos-10k", schedule(total=10000), seed=2)]

    fc = forecast_loss(target, family)

    d = fc.details
    assert d["backtest_runs_annealing"] == 2.0
    assert 4.3027 * d["backtest_rms_annealing"] < 1.959964 * MODEL_ERROR_FRACTION * abs(d["annealing_unseen"])
    assert d["sd_model_from_backtest"] == 0.0
    assert d["sd_model"] == pytest.approx(MODEL_ERROR_FRACTION * abs(d["annealing_unseen"]))
    assert d["model_multiplier"] == pytest.approx(1.959964)


@pytest.mark.parametrize("bad", [{"law": "chinchilla"}, {"level": 1.0}, {"at_step": 0}, {"at_step": 30000}])
def test_bad_arguments_are_value_errors(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        forecast_loss(run("t", schedule(), upto=5000), [], **bad)


# ---------------------------------------------------------------------------------------------------------------
# Verdict


def test_a_forecast_within_the_combined_interval_is_on_the_law():
    verdict = compare_with_law(2.60, (2.58, 2.62), 2.61, (2.59, 2.63))

    assert verdict.verdict == "on"
    assert verdict.percent == pytest.approx(-100 * 0.01 / 2.61)
    # Two independent 95% half-widths of 0.02 combine to 0.02 * sqrt(2).
    assert verdict.percent_margin == pytest.approx(100 * 0.02 * math.sqrt(2) / 2.61, rel=1e-6)
    assert verdict.text.startswith("on the law (-0.38% ± 1.08%")


@pytest.mark.parametrize(
    ("forecast", "expected", "words"), [(2.70, "above", "above the law by"), (2.50, "below", "below the law by")]
)
def test_a_forecast_clear_of_the_law_is_above_or_below_it(forecast, expected, words):
    verdict = compare_with_law(forecast, (forecast - 0.01, forecast + 0.01), 2.60, None)

    assert verdict.verdict == expected
    assert verdict.text.startswith(words)
    assert json.loads(json.dumps(verdict.as_dict()))["verdict"] == expected


def test_levels_rescale_the_intervals():
    # A 68.3% interval of half-width 0.01 is a standard deviation of 0.01: at 95% the margin is 1.96 sd.
    verdict = compare_with_law(2.6, (2.59, 2.61), 2.6, None, forecast_level=0.6826894921, level=0.95)

    assert verdict.percent_margin == pytest.approx(100 * 1.959964 * 0.01 / 2.6, rel=1e-5)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((-1.0, None, 2.6, None), {}, "forecast_loss"),
        ((2.6, None, float("nan"), None), {}, "law_loss"),
        ((2.6, (2.7, 2.5), 2.6, None), {}, "interval"),
        ((2.6, None, 2.6, None), {"level": 1.5}, "level"),
    ],
)
def test_bad_verdict_inputs_are_value_errors(args, kwargs, field):
    with pytest.raises(ValueError, match=field):
        compare_with_law(*args, **kwargs)
