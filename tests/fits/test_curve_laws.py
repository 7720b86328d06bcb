"""fits.laws.curves' law interface: each curve law is one CurveLaw object in CURVE_LAW_REGISTRY that owns its
shared parameters, coordinates, bounds, starts, drop term and Jacobian; the fitting code reads only that interface,
so a law registered there is fitted, predicted and forecast without any other change."""

import numpy as np
import pytest

from fits.laws import curves
from fits.laws.curves import (
    CURVE_LAW_REGISTRY,
    CURVE_LAWS,
    CurveLaw,
    RunCurve,
    _design,
    curve_law,
    fit_curves,
)
from fits.laws.forecast import FamilyRun, forecast_loss
from fits.laws.schedules import ScheduleSpec, build_schedule

PEAK = 1e-3


def schedule(decay="cosine", total=20000, **kw):
    return build_schedule(ScheduleSpec(total, PEAK, 500, decay, final_lr=1e-4, **kw))


def test_every_law_in_the_registry_describes_its_shared_parameters_consistently():
    assert set(CURVE_LAWS) == set(CURVE_LAW_REGISTRY) == {"annealing", "multipower"}
    for name in CURVE_LAWS:
        law = curve_law(name)
        assert law.name == name
        assert len(law.shared_params) == len(law.coordinates) == len(law.bounds)
        assert set(law.unidentified) == set(law.shared_params)
        assert law.amplitude in law.shared_params
        assert all(len(s) == len(law.coordinates) for s in law.start_shapes())
    with pytest.raises(ValueError, match="law must be one of"):
        curve_law("chinchilla")


@pytest.mark.parametrize("name", CURVE_LAWS)
def test_each_laws_drop_jacobian_matches_finite_differences(name):
    law = curve_law(name)
    sched = schedule("linear", decay_start=12000)
    des = _design(sched, np.linspace(1000, 20000, 40), PEAK, 64)
    prepared = law.prepare(des, curves.ANNEALING_LAMBDA)
    coords = np.array([np.mean(b) for b in law.bounds]) * 0.5 + 0.1
    if name == "multipower":
        coords = np.array([np.log(0.3), np.log(0.05), 0.6, 0.5])

    _, jac = law.drop_jac(des, prepared, coords)

    for j in range(coords.shape[0]):
        h = 1e-6 * max(1.0, abs(coords[j]))
        up, down = coords.copy(), coords.copy()
        up[j] += h
        down[j] -= h
        numeric = (law.drop_jac(des, prepared, up)[0] - law.drop_jac(des, prepared, down)[0]) / (2 * h)
        assert jac[:, j] == pytest.approx(numeric, rel=1e-4, abs=1e-9), law.coordinates[j]


class InstantDropLaw(CurveLaw):
    """A test-only law: a decay removes C x (peak - current learning rate) at once, with no lag."""

    name = "instant"
    shared_params = ("C",)
    coordinates = ("C",)
    bounds = ((0.0, 10.0),)
    unidentified = {"C": 0.0}
    amplitude = "C"

    def start_shapes(self):
        return [np.zeros(1)]

    def shared_from(self, coords, identified):
        return {"C": float(coords[0])}

    def _unit(self, des):
        return des.live.astype(float) @ des.drop

    def drop_jac(self, des, prepared, coords):
        unit = self._unit(des)
        return coords[0] * unit, unit[:, None]

    def unit_drop(self, des, prepared, shape):
        return self._unit(des)

    def from_start(self, amplitude, shape):
        return np.array([max(amplitude, 0.0)])

    def loss(self, params, sched, steps, *, lr_scale=1.0, lam=curves.ANNEALING_LAMBDA):
        des = _design(sched, np.asarray(steps, dtype=float), lr_scale, None)
        return params["L0"] + params["A"] * des.s1 ** (-params["alpha"]) - params["C"] * self._unit(des)


def test_a_law_registered_in_the_registry_is_fitted_and_forecast_with_no_other_change(monkeypatch):
    law = InstantDropLaw()
    monkeypatch.setitem(CURVE_LAW_REGISTRY, law.name, law)
    truth = {"L0": 2.0, "A": 30.0, "alpha": 0.5, "C": 0.12}
    cosine, wsd = schedule(), schedule("linear", decay_start=16000)
    steps = np.arange(600, 20001, 100.0)
    lender = RunCurve("cos", steps, law.loss(truth, cosine, steps, lr_scale=PEAK), cosine, group="1B")

    fit = fit_curves([lender], law="instant")

    assert fit.shared["C"] == pytest.approx(0.12, rel=1e-3)
    assert fit.annealing_removed(wsd, [20000], "1B")[0] == pytest.approx(0.12 * 0.9, rel=1e-3)

    seen = steps[steps <= 10000]
    target = FamilyRun("wsd", "1B", seen, law.loss(truth, wsd, seen, lr_scale=PEAK), wsd)
    family = [FamilyRun("cos", "1B", steps, lender.loss, cosine)]
    monkeypatch.setattr("fits.laws.forecast.FORECAST_LAWS", ("auto", *CURVE_LAW_REGISTRY))

    fc = forecast_loss(target, family, law="instant")

    assert fc.ok
    assert fc.law == "instant"
    assert fc.loss == pytest.approx(float(law.loss(truth, wsd, [20000], lr_scale=PEAK)[0]), abs=1e-3)
