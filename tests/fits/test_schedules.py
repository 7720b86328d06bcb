"""fits.laws.schedules: a run's per-step learning rate from a description, from logged lr points, or both."""

import json

import numpy as np
import pytest

from fits.laws.curve_data import MULTIPOWER_SIZES, load_multipower_curves, load_olmo_ladder_curves
from fits.laws.schedules import (
    Schedule,
    ScheduleError,
    ScheduleSpec,
    build_schedule,
    planned_mismatch,
    schedule_from_log,
)


def test_cosine_runs_from_peak_after_warmup_to_the_final_rate_at_the_last_step():
    sched = build_schedule(ScheduleSpec(total_steps=1000, peak_lr=1e-3, warmup_steps=100, final_lr=1e-4))

    assert sched.total_steps == 1000
    assert sched.lr[0] == 0.0
    assert sched.lr[50] == pytest.approx(5e-4)
    assert sched.lr[100] == pytest.approx(1e-3)
    assert sched.lr[550] == pytest.approx(5.5e-4)  # halfway through the decay: the mean of peak and final
    assert sched.lr[1000] == pytest.approx(1e-4)
    assert np.all(np.diff(sched.lr[100:]) <= 0)


@pytest.mark.parametrize(
    ("decay", "at_600"),
    [("constant", 1e-3), ("linear", 1e-3 + (1e-4 - 1e-3) * 0.5), ("exponential", 1e-3 * 0.1**0.5), ("step", 1e-4)],
)
def test_late_decays_start_at_decay_start(decay, at_600):
    spec = ScheduleSpec(total_steps=800, peak_lr=1e-3, decay=decay, decay_start=400, final_lr=1e-4)

    sched = build_schedule(spec)

    assert sched.lr[399] == pytest.approx(1e-3)
    assert sched.lr[600] == pytest.approx(at_600)
    assert sched.lr[800] == pytest.approx(1e-3 if decay == "constant" else 1e-4)


@pytest.mark.parametrize("size", list(MULTIPOWER_SIZES))
def test_descriptions_reproduce_the_logged_lr_of_the_multipower_curves(size):
    for curve in load_multipower_curves(size).values():
        built = curve.schedule.lr[curve.steps.astype(int)]
        assert np.max(np.abs(built - curve.lr) / curve.lr) < 1e-8, curve.name


def test_descriptions_reproduce_the_logged_lr_of_the_olmo_ladder():
    for curve in load_olmo_ladder_curves().values():
        built = curve.schedule.lr[curve.steps.astype(int)]
        # W&B logs the lr of a step near the logged one: within 0.25% of peak (the shared data's README).
        assert np.max(np.abs(built - curve.lr)) / curve.plan.peak_lr < 2.6e-3, curve.name
        assert curve.schedule.lr[-1] == pytest.approx(0.1 * curve.plan.peak_lr)


def test_logged_past_and_planned_rest_make_one_schedule():
    plan = ScheduleSpec(total_steps=1000, peak_lr=1e-3, warmup_steps=100, decay="linear", decay_start=500)
    # The run logged a slightly lower peak than planned for its first 400 steps.
    steps = np.arange(0, 401, 10)
    logged = np.minimum(steps / 100, 1.0) * 9e-4

    sched = schedule_from_log(steps, logged, plan=plan)

    assert sched.total_steps == 1000
    assert sched.lr[205] == pytest.approx(9e-4)  # interpolated between logged points
    assert sched.lr[1000] == pytest.approx(0.0)
    assert sched.lr[700] == pytest.approx(build_schedule(plan).lr[700])  # the plan beyond the log
    assert planned_mismatch(sched, plan, 400) == pytest.approx(0.1, rel=1e-6)


def test_a_log_without_a_plan_holds_its_ends_and_keeps_the_last_of_repeated_steps():
    sched = schedule_from_log([10, 20, 20, 30], [1.0, 2.0, 3.0, 0.5], total_steps=40)

    assert sched.lr[0] == 1.0
    assert sched.lr[20] == 3.0
    assert sched.lr[40] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"total_steps": 0, "peak_lr": 1e-3}, "total_steps"),
        ({"total_steps": 10.5, "peak_lr": 1e-3}, "total_steps"),
        ({"total_steps": 10, "peak_lr": -1.0}, "peak_lr"),
        ({"total_steps": 10, "peak_lr": float("nan")}, "peak_lr"),
        ({"total_steps": 10, "peak_lr": 1e-3, "warmup_steps": 11}, "warmup_steps"),
        ({"total_steps": 10, "peak_lr": 1e-3, "decay": "sawtooth"}, "decay"),
        ({"total_steps": 10, "peak_lr": 1e-3, "warmup_steps": 5, "decay_start": 2}, "decay_start"),
        ({"total_steps": 10, "peak_lr": 1e-3, "final_lr": 2e-3}, "final_lr"),
        ({"total_steps": 10, "peak_lr": 1e-3, "decay": "exponential", "final_lr": 0.0}, "final_lr"),
        ({"total_steps": 10, "peak_lr": 1e-3, "tokens_per_step": 0.0}, "tokens_per_step"),
    ],
)
def test_a_bad_description_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ScheduleError, match=field):
        ScheduleSpec(**kwargs)


@pytest.mark.parametrize(
    ("steps", "lrs", "message"),
    [
        ([], [], "no logged"),
        ([1, 2], [1.0], "same length"),
        ([1, 2], [1.0, float("inf")], "finite"),
        ([1, 2], [1.0, -1.0], "non-negative"),
    ],
)
def test_a_bad_log_is_refused(steps, lrs, message):
    with pytest.raises(ScheduleError, match=message):
        schedule_from_log(steps, lrs)


def test_a_log_past_its_plan_is_refused():
    with pytest.raises(ScheduleError, match="total_steps"):
        schedule_from_log([0, 200], [1e-3, 1e-3], plan=ScheduleSpec(total_steps=100, peak_lr=1e-3))


def test_descriptions_round_trip_through_json_and_unknown_fields_are_named():
    spec = ScheduleSpec(total_steps=100, peak_lr=1e-3, warmup_steps=10, decay="linear", tokens_per_step=4096.0)

    assert ScheduleSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec
    with pytest.raises(ScheduleError, match="peak"):
        ScheduleSpec.from_dict({"total_steps": 100, "peak_lr": 1e-3, "peak": 2})


def test_decay_is_measured_against_the_peak_seen_so_far():
    sched = build_schedule(ScheduleSpec(total_steps=100, peak_lr=1.0, warmup_steps=10, decay="linear", final_lr=0.1))

    assert sched.lowest_fraction(10) == 1.0
    assert not sched.has_decayed(50)  # at step 50 the rate is 0.6 of peak
    assert sched.has_decayed(80)
    assert sched.lowest_fraction() == pytest.approx(0.1)


def test_a_schedule_array_is_read_only_and_validated():
    sched = Schedule(np.array([0.0, 1.0, 0.5]))

    with pytest.raises(ValueError, match="read-only"):
        sched.lr[0] = 2.0
    with pytest.raises(ScheduleError):
        Schedule(np.array([0.0, 0.0]))
    with pytest.raises(ScheduleError):
        Schedule(np.array([1.0, -1.0]))
