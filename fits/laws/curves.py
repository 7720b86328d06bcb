"""Schedule-aware loss-curve laws fitted to whole training curves (docs/curves.md).

Laws, for a run with per-step learning rate eta (fits.laws.schedules), at step t:

- ``multipower`` (Luo et al. 2025, arXiv:2503.12811):
  L(t) = L0 + A * S1(t)^(-alpha) - B * sum_{k=1..t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t)),
  G(x) = 1 - (C x + 1)^(-beta), S1(t) = eta_0 + ... + eta_t (warmup included, so S1 carries S_W),
  S_k(t) = eta_k + ... + eta_t. Warmup increases enter the sum with a negative sign, as in the authors' code.
- ``annealing`` (Tissue et al. 2024, arXiv:2408.11029): L(t) = L0 + A * S1(t)^(-alpha) - C * S2(t),
  S2(t) = sum_{k<=t} (eta_{k-1} - eta_k) * (1 - lambda^(t-k+1)) / (1 - lambda), lambda = 0.999: the annealing area
  with the paper's momentum form, four parameters.
- ``power`` (the schedule-blind baseline): L(t) = L0 + A * t^(-alpha), t in steps; it ignores the schedule.

Learning rates enter in units of the group's reference learning rate (the largest peak among the group's runs), so
A, B and C are comparable across sizes; ``lr_scale=1`` gives the authors' raw units (MULTIPOWER_PUBLISHED).

Runs are grouped (``group``: a model size): L0, A and alpha are per group; the annealing parameters (B, C, beta,
gamma, or the annealing law's C) are shared by every run and group of a fit. The objective is weighted least
squares on the loss in nats over the binned history (bin_history): every run's points carry total weight equal to
its number of bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from fits.laws.fitting import HUBER_DELTA
from fits.laws.observations import FitFailed, FloatArray
from fits.laws.schedules import Schedule

IntArray = npt.NDArray[np.int64]
GROUP_PARAMS = ("L0", "A", "alpha")
ANNEALING_LAMBDA = 0.999
# The binning rule (docs/curves.md, "Bounded work"): at most this many points per run enter a fit, and the
# loss-drop sum is grouped into at most this many blocks of equal learning-rate decrease (plus one cut at every
# fitted step, so no block straddles one).
MAX_POINTS_PER_RUN = 192
MAX_DROP_BLOCKS = 256
# Laws evaluated at many steps go this many steps at a time: blocks are cut at every evaluated step, so one design
# over n steps would cost n x n.
EVAL_CHUNK = 256
_ETA_FLOOR = 1e-9  # eta_k = 0 (a decay to zero) sends eta^-gamma to infinity and G to 1; the floor keeps it finite

# Optimiser coordinates: L0, log A, alpha per group; then the law's shared coordinates (CurveLaw.coordinates).
_BOUNDS_GROUP = ((0.0, 50.0), (-12.0, 12.0), (0.02, 2.0))


# ---------------------------------------------------------------------------------------------------------------
# Histories and their binning


@dataclass(frozen=True)
class RunCurve:
    """One run's loss history and its schedule, as a curve fit takes it.

    ``steps`` and ``loss`` are the logged points the fit may use (already cut at what has been seen: a forecast
    passes only the observed prefix of the run it forecasts); ``schedule`` covers at least every logged step (for a
    running run: the logged past and the planned rest). ``group`` is the run's model size; ``weights`` (default:
    one per point) are the numbers of raw points behind each point, as bin_history returns them.
    """

    run: str
    steps: FloatArray
    loss: FloatArray
    schedule: Schedule
    group: str = ""
    weights: FloatArray | None = None

    def __post_init__(self) -> None:
        steps = np.ascontiguousarray(self.steps, dtype=np.float64).reshape(-1)
        loss = np.ascontiguousarray(self.loss, dtype=np.float64).reshape(-1)
        if steps.shape != loss.shape:
            raise ValueError(f"{self.run}: steps and loss must have the same length")
        if steps.shape[0] and (not np.all(np.isfinite(steps)) or not np.all(np.isfinite(loss))):
            raise ValueError(f"{self.run}: steps and loss must be finite")
        if steps.shape[0] and (steps.min() < 1 or steps.max() > self.schedule.total_steps):
            raise ValueError(f"{self.run}: logged steps must lie within 1 .. the schedule's total_steps")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "loss", loss)
        if self.weights is not None:
            w = np.ascontiguousarray(self.weights, dtype=np.float64).reshape(-1)
            if w.shape != steps.shape or np.any(~np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"{self.run}: weights must be non-negative, one per point")
            object.__setattr__(self, "weights", w)

    @property
    def last_step(self) -> int:
        return int(self.steps.max()) if self.steps.shape[0] else 0


def bin_history(
    steps: npt.ArrayLike, loss: npt.ArrayLike, *, max_points: int = MAX_POINTS_PER_RUN
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Downsample a history to at most `max_points` points: (steps, mean loss, count) per bin.

    Points with a non-finite step or loss, a loss of zero or below (not a loss in nats; the laws fit its log), or a
    step below 1, are dropped. A history of at most `max_points`
    distinct steps is returned as is (repeated steps averaged). Otherwise the bins are the union of `max_points`/2
    equal-width bins in step and `max_points`/2 equal-width bins in log(step) between the first and last step:
    the early curve (fast in steps) and the late one (where the decay acts) both keep resolution. A bin stands
    at the mean step of its points with their mean loss. O(n log n) for n points.
    """
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    st = np.asarray(steps, dtype=np.float64).reshape(-1)
    ls = np.asarray(loss, dtype=np.float64).reshape(-1)
    if st.shape != ls.shape:
        raise ValueError("steps and loss must have the same length")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(st) & np.isfinite(ls) & (st >= 1) & (ls > 0)
    st, ls = st[ok], ls[ok]
    if st.shape[0] == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(st, kind="stable")
    st, ls = st[order], ls[order]
    uniq, first = np.unique(st, return_index=True)
    if uniq.shape[0] <= max_points:
        counts = np.diff(np.append(first, st.shape[0])).astype(np.float64)
        return uniq, np.add.reduceat(ls, first) / counts, counts
    lo, hi = float(st[0]), float(st[-1])
    half = max_points // 2
    edges = np.unique(np.concatenate([np.linspace(lo, hi, half + 1), np.geomspace(lo, hi, half + 1)]))
    which = np.clip(np.searchsorted(edges, st, side="right") - 1, 0, edges.shape[0] - 2)
    counts = np.bincount(which, minlength=edges.shape[0] - 1).astype(np.float64)
    sum_s = np.bincount(which, weights=st, minlength=edges.shape[0] - 1)
    sum_l = np.bincount(which, weights=ls, minlength=edges.shape[0] - 1)
    keep = counts > 0
    return sum_s[keep] / counts[keep], sum_l[keep] / counts[keep], counts[keep]


def binned(curve: RunCurve, *, max_points: int = MAX_POINTS_PER_RUN) -> RunCurve:
    """The curve with its history binned (bin_history); weights are the bins' point counts. A curve already
    weighted and within `max_points` is returned as is; binning again counts points, not their weights."""
    if curve.steps.shape[0] <= max_points and curve.weights is not None:
        return curve
    st, ls, counts = bin_history(curve.steps, curve.loss, max_points=max_points)
    return RunCurve(run=curve.run, steps=st, loss=ls, schedule=curve.schedule, group=curve.group, weights=counts)


# ---------------------------------------------------------------------------------------------------------------
# The design: what the laws need from a schedule at a set of steps, computed once per fit


@dataclass(frozen=True)
class _Design:
    """Schedule quantities at evaluation steps t_i (one curve): S1(t_i), and the loss-drop blocks j with their
    summed decrease D_j, representative learning rate eta_j, area before the block c_j and step k_j; ``reach`` is
    S1(t_i) - c_j where block j lies at or before t_i, else 0 (``live`` marks those)."""

    s1: FloatArray
    steps: FloatArray
    drop: FloatArray
    eta: FloatArray
    step_at: FloatArray
    reach: FloatArray
    live: npt.NDArray[np.bool_]


def _design(
    schedule: Schedule, steps: FloatArray, lr_scale: float, max_blocks: int | None, increases: bool = False
) -> _Design:
    """Block the learning-rate decreases of `schedule` and evaluate S1 and S_k at `steps` (integer-rounded).

    Only decreases enter the loss-drop sum unless `increases` (warmup then enters with a negative sign, the
    authors' convention for the published parameters). Blocks hold equal shares of the total |decrease| (at most
    `max_blocks`; None: one block per step, exact), are cut where the decrease changes sign and after every
    evaluation step. A block stands at its decrease-weighted mean learning rate, area and step; the error this makes
    is measured in tests/fits/test_curves.py.
    """
    eta = schedule.lr / lr_scale
    t = np.clip(np.rint(steps).astype(np.int64), 0, schedule.total_steps)
    area = np.cumsum(eta)
    s1 = area[t]
    d = eta[:-1] - eta[1:]  # d[k-1] = eta_{k-1} - eta_k for k = 1 .. total_steps
    nz = np.flatnonzero(d if increases else d > 0)
    if nz.shape[0] == 0:
        empty = np.zeros(0)
        return _Design(
            s1,
            t.astype(np.float64),
            empty,
            empty,
            empty,
            np.zeros((t.shape[0], 0)),
            np.zeros((t.shape[0], 0), dtype=bool),
        )
    k = nz + 1
    dk = d[nz]
    w = np.abs(dk)
    cuts = [np.zeros(1, dtype=np.int64)]
    if max_blocks is None:
        cuts.append(np.arange(k.shape[0], dtype=np.int64))
    else:
        mass = np.cumsum(w)
        cuts.append(np.searchsorted(mass, np.linspace(0.0, mass[-1], max_blocks + 1)[1:-1], side="right"))
        sign = np.sign(dk)
        cuts.append(np.flatnonzero(sign[1:] != sign[:-1]) + 1)
        cuts.append(np.searchsorted(k, t, side="right"))
    starts = np.unique(np.concatenate(cuts))
    starts = starts[starts < k.shape[0]]
    wsum = np.add.reduceat(w, starts)
    drop = np.add.reduceat(dk, starts)
    eta_j = np.add.reduceat(w * eta[k], starts) / wsum
    area_before = np.add.reduceat(w * area[k - 1], starts) / wsum
    step_j = np.add.reduceat(w * k, starts) / wsum
    last_k = k[np.append(starts[1:] - 1, k.shape[0] - 1)]
    live = last_k[None, :] <= t[:, None]
    reach = np.where(live, s1[:, None] - area_before[None, :], 0.0)
    return _Design(s1, t.astype(np.float64), drop, np.maximum(eta_j, _ETA_FLOOR), step_j, np.maximum(reach, 0.0), live)


def _drop_multipower(des: _Design, c: float, beta: float, gamma: float) -> tuple[FloatArray, ...]:
    """sum_j D_j G_ij and its derivatives in log C, beta and gamma (each of shape (n_steps,))."""
    if des.drop.shape[0] == 0:
        z = np.zeros(des.s1.shape[0])
        return z, z, z, z
    log_eta = np.log(des.eta)
    x = np.exp(-gamma * log_eta)[None, :] * des.reach
    u = 1.0 + c * x
    u_mb = u ** (-beta)
    g = 1.0 - u_mb
    common = beta * u_mb / u * c * x  # dG/dlogC; dG/dgamma = common * (-log eta)
    dg_beta = u_mb * np.log(u)
    drop = des.drop
    return g @ drop, common @ drop, dg_beta @ drop, (common * (-log_eta)[None, :]) @ drop


def _drop_annealing(des: _Design, lam: float = ANNEALING_LAMBDA) -> FloatArray:
    """S2 at each step: sum_j D_j (1 - lam^(t - k_j + 1)) / (1 - lam) over the blocks at or before t."""
    if des.drop.shape[0] == 0:
        return np.zeros(des.s1.shape[0])
    lag = np.where(des.live, des.steps[:, None] - des.step_at[None, :] + 1.0, 0.0)
    kern = np.where(des.live, -np.expm1(np.log(lam) * lag) / (1.0 - lam), 0.0)
    return np.asarray(kern @ des.drop, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Prediction


def multipower_loss(
    params: Mapping[str, float],
    schedule: Schedule,
    steps: npt.ArrayLike,
    *,
    lr_scale: float = 1.0,
    max_blocks: int | None = MAX_DROP_BLOCKS,
    warmup_in_drop: bool = False,
) -> FloatArray:
    """The multi-power law's loss at `steps` of a run on `schedule` (params L0, A, alpha, B, C, beta, gamma, in
    units of `lr_scale`; max_blocks None sums every step exactly). `warmup_in_drop` counts the warmup's increases
    in the loss-drop sum with a negative sign, as the authors' code does (their published L0 assumes it)."""
    st = np.asarray(steps, dtype=np.float64).reshape(-1)
    out = np.empty(st.shape[0])
    for lo in range(0, st.shape[0], EVAL_CHUNK):
        des = _design(schedule, st[lo : lo + EVAL_CHUNK], lr_scale, max_blocks, warmup_in_drop)
        ld = _drop_multipower(des, float(params["C"]), float(params["beta"]), float(params["gamma"]))[0]
        out[lo : lo + EVAL_CHUNK] = params["L0"] + params["A"] * des.s1 ** (-float(params["alpha"])) - params["B"] * ld
    return out


def annealing_loss(
    params: Mapping[str, float],
    schedule: Schedule,
    steps: npt.ArrayLike,
    *,
    lr_scale: float = 1.0,
    max_blocks: int | None = MAX_DROP_BLOCKS,
    lam: float = ANNEALING_LAMBDA,
) -> FloatArray:
    """Tissue et al.'s annealing law at `steps` (params L0, A, alpha, C; momentum `lam`, 0.999 by default)."""
    st = np.asarray(steps, dtype=np.float64).reshape(-1)
    out = np.empty(st.shape[0])
    for lo in range(0, st.shape[0], EVAL_CHUNK):
        des = _design(schedule, st[lo : lo + EVAL_CHUNK], lr_scale, max_blocks)
        power = params["A"] * des.s1 ** (-float(params["alpha"]))
        out[lo : lo + EVAL_CHUNK] = params["L0"] + power - params["C"] * _drop_annealing(des, lam)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The laws: one object per law owns its shared parameters, their coordinates, bounds and starts, and its drop term
# with its Jacobian; the fitting code and the rest of the project call these and never branch on a law's name.


class CurveLaw:
    """A schedule-aware curve law L(t) = L0 + A S1(t)^(-alpha) - drop(t), with L0, A, alpha per group and the drop's
    parameters shared by every run and group of a fit.

    ``shared_params`` are the drop's parameters in natural units (as CurveFit.shared holds them); ``coordinates``
    their optimiser coordinates, with ``bounds``; ``unidentified`` the values held when no fitted run's learning
    rate decreases (no loss drop); ``amplitude`` the shared parameter that scales the drop (zero: no annealing);
    ``momentum`` whether the law reads the fit's momentum ``lam``.
    """

    name: str = ""
    shared_params: tuple[str, ...] = ()
    coordinates: tuple[str, ...] = ()
    bounds: tuple[tuple[float, float], ...] = ()
    unidentified: Mapping[str, float] = {}
    amplitude: str = ""
    momentum: bool = False

    def start_shapes(self) -> list[FloatArray]:
        """The grid of shared coordinates a fit starts from (the amplitude's coordinate is set by least squares)."""
        raise NotImplementedError

    def coordinate(self, name: str, value: float) -> float:
        """A shared parameter in optimiser coordinates."""
        return float(value)

    def shared_from(self, coords: FloatArray, identified: bool) -> dict[str, float]:
        """The shared parameters in natural units from their optimiser coordinates."""
        raise NotImplementedError

    def prepare(self, des: _Design, lam: float) -> FloatArray | None:
        """What the law computes once per curve of a fit (None: nothing)."""
        return None

    def drop_jac(self, des: _Design, prepared: FloatArray | None, coords: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The loss the drop removes at the design's steps, and its derivatives in the shared coordinates."""
        raise NotImplementedError

    def unit_drop(self, des: _Design, prepared: FloatArray | None, shape: FloatArray) -> FloatArray:
        """The drop at unit amplitude for a start shape (the column a linear start fits the amplitude on)."""
        raise NotImplementedError

    def from_start(self, amplitude: float, shape: FloatArray) -> FloatArray:
        """Shared coordinates from a start shape and its least-squares amplitude."""
        raise NotImplementedError

    def loss(
        self,
        params: Mapping[str, float],
        schedule: Schedule,
        steps: npt.ArrayLike,
        *,
        lr_scale: float = 1.0,
        lam: float = ANNEALING_LAMBDA,
    ) -> FloatArray:
        """The law's loss at `steps` of a run on `schedule` (params: GROUP_PARAMS and the shared ones)."""
        raise NotImplementedError


class MultiPowerLaw(CurveLaw):
    """Luo et al.'s multi-power law (module docstring): shared B, C, beta, gamma; coordinates log B, log C."""

    name = "multipower"
    shared_params = ("B", "C", "beta", "gamma")
    coordinates = ("logB", "logC", "beta", "gamma")
    bounds = ((-12.0, 6.0), (-12.0, 8.0), (0.02, 4.0), (0.0, 1.5))
    unidentified = {"B": 0.0, "C": 1.0, "beta": 1.0, "gamma": 0.5}
    amplitude = "B"

    def start_shapes(self) -> list[FloatArray]:
        return [np.array(s) for s in _START_SHARED]

    def coordinate(self, name: str, value: float) -> float:
        # B = 0 (no drop) maps to log 1e-300, far below the bound: the coordinate is held, never fitted, then.
        return float(np.log(max(value, 1e-300))) if name in ("B", "C") else float(value)

    def shared_from(self, coords: FloatArray, identified: bool) -> dict[str, float]:
        return {
            "B": float(np.exp(coords[0])) if identified else 0.0,
            "C": float(np.exp(coords[1])),
            "beta": float(coords[2]),
            "gamma": float(coords[3]),
        }

    def drop_jac(self, des: _Design, prepared: FloatArray | None, coords: FloatArray) -> tuple[FloatArray, FloatArray]:
        b = float(np.exp(coords[0]))
        ld, d_logc, d_beta, d_gamma = _drop_multipower(
            des, float(np.exp(coords[1])), float(coords[2]), float(coords[3])
        )
        return b * ld, b * np.column_stack([ld, d_logc, d_beta, d_gamma])

    def unit_drop(self, des: _Design, prepared: FloatArray | None, shape: FloatArray) -> FloatArray:
        return _drop_multipower(des, float(np.exp(shape[1])), float(shape[2]), float(shape[3]))[0]

    def from_start(self, amplitude: float, shape: FloatArray) -> FloatArray:
        return np.array([np.log(max(amplitude, 1e-6)), shape[1], shape[2], shape[3]])

    def loss(
        self,
        params: Mapping[str, float],
        schedule: Schedule,
        steps: npt.ArrayLike,
        *,
        lr_scale: float = 1.0,
        lam: float = ANNEALING_LAMBDA,
    ) -> FloatArray:
        return multipower_loss(params, schedule, steps, lr_scale=lr_scale)


class AnnealingLaw(CurveLaw):
    """Tissue et al.'s annealing law (module docstring): shared C, the drop's S2 with the fit's momentum lam."""

    name = "annealing"
    shared_params = ("C",)
    coordinates = ("C",)
    bounds = ((0.0, 10.0),)
    unidentified = {"C": 0.0}
    amplitude = "C"
    momentum = True

    def start_shapes(self) -> list[FloatArray]:
        return [np.zeros(1)]

    def shared_from(self, coords: FloatArray, identified: bool) -> dict[str, float]:
        return {"C": float(coords[0])}

    def prepare(self, des: _Design, lam: float) -> FloatArray | None:
        return _drop_annealing(des, lam)

    def drop_jac(self, des: _Design, prepared: FloatArray | None, coords: FloatArray) -> tuple[FloatArray, FloatArray]:
        assert prepared is not None
        return coords[0] * prepared, prepared[:, None]

    def unit_drop(self, des: _Design, prepared: FloatArray | None, shape: FloatArray) -> FloatArray:
        assert prepared is not None
        return prepared

    def from_start(self, amplitude: float, shape: FloatArray) -> FloatArray:
        return np.array([max(amplitude, 0.0)])

    def loss(
        self,
        params: Mapping[str, float],
        schedule: Schedule,
        steps: npt.ArrayLike,
        *,
        lr_scale: float = 1.0,
        lam: float = ANNEALING_LAMBDA,
    ) -> FloatArray:
        return annealing_loss(params, schedule, steps, lr_scale=lr_scale, lam=lam)


_START_SHARED = tuple(
    (0.0, np.log(c), beta, gamma) for c in (0.01, 0.1, 1.0) for beta in (0.3, 0.6, 1.2) for gamma in (0.3, 0.6)
)
CURVE_LAW_REGISTRY: dict[str, CurveLaw] = {law.name: law for law in (MultiPowerLaw(), AnnealingLaw())}
CURVE_LAWS = tuple(CURVE_LAW_REGISTRY)
SHARED_PARAMS: dict[str, tuple[str, ...]] = {name: law.shared_params for name, law in CURVE_LAW_REGISTRY.items()}


def curve_law(name: str) -> CurveLaw:
    """The curve law called `name` (CURVE_LAWS); ValueError for any other name."""
    try:
        return CURVE_LAW_REGISTRY[name]
    except KeyError:
        raise ValueError(f"law must be one of {', '.join(CURVE_LAWS)}") from None


def power_loss(params: Mapping[str, float], steps: npt.ArrayLike) -> FloatArray:
    """The schedule-blind baseline L0 + A * t^(-alpha), t in steps."""
    st = np.asarray(steps, dtype=np.float64)
    return np.asarray(params["L0"] + params["A"] * st ** (-float(params["alpha"])), dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class CurveFit:
    """A curve law fitted to some runs: per-group and shared parameters, their covariance, diagnostics.

    ``groups`` maps each group to its L0, A, alpha; ``shared`` holds the annealing parameters; ``lr_scale`` each
    group's reference learning rate. ``theta_names`` and ``covariance`` (optimiser coordinates: log A, log B,
    log C) describe the uncertainty, the residual variance inflated for autocorrelation (docs/curves.md,
    "Interval"). ``annealing_identified`` is false when no fitted run's learning rate decreased: the shared
    parameters then mean nothing.
    """

    law: str
    groups: dict[str, dict[str, float]]
    shared: dict[str, float]
    lr_scale: dict[str, float]
    theta: FloatArray
    theta_names: list[str]
    covariance: FloatArray
    runs: list[str]
    metrics: dict[str, float]
    annealing_identified: bool
    warnings: list[str] = field(default_factory=list)
    lam: float = ANNEALING_LAMBDA

    def params_for(self, group: str) -> dict[str, float]:
        """The law's parameters for one group (its own and the shared ones)."""
        return {**self.groups[group], **self.shared}

    @property
    def curve_law(self) -> CurveLaw:
        return curve_law(self.law)

    def predict(self, schedule: Schedule, steps: npt.ArrayLike, group: str) -> FloatArray:
        """The fitted law's loss at `steps` of a run of `group` on `schedule`."""
        return self.curve_law.loss(self.params_for(group), schedule, steps, lr_scale=self.lr_scale[group], lam=self.lam)

    def annealing_removed(self, schedule: Schedule, steps: npt.ArrayLike, group: str) -> FloatArray:
        """The loss the fitted drop term removes at `steps`: the law without its drop minus the law."""
        params = self.params_for(group)
        off = {**params, self.curve_law.amplitude: 0.0}
        law, scale = self.curve_law, self.lr_scale[group]
        return law.loss(off, schedule, steps, lr_scale=scale, lam=self.lam) - law.loss(
            params, schedule, steps, lr_scale=scale, lam=self.lam
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (theta and the covariance as lists)."""
        return {
            "law": self.law,
            "groups": {g: dict(p) for g, p in self.groups.items()},
            "shared": dict(self.shared),
            "lr_scale": dict(self.lr_scale),
            "lam": self.lam,
            "theta": [float(v) for v in self.theta],
            "theta_names": list(self.theta_names),
            "covariance": [[float(v) for v in row] for row in self.covariance],
            "runs": list(self.runs),
            "metrics": dict(self.metrics),
            "annealing_identified": self.annealing_identified,
            "warnings": list(self.warnings),
        }


class _Problem:
    """The stacked residual model of a fit: one design per curve, parameters laid out per group then shared."""

    def __init__(
        self, law: str, curves: Sequence[RunCurve], lr_scale: Mapping[str, float], lam: float = ANNEALING_LAMBDA
    ) -> None:
        self.law = law
        self.curve_law = curve_law(law)
        self.lam = lam
        self.groups = sorted({c.group for c in curves})
        self.n_group = len(self.groups)
        self.n_shared = len(self.curve_law.coordinates)
        self.designs = [_design(c.schedule, c.steps, lr_scale[c.group], MAX_DROP_BLOCKS) for c in curves]
        self.gidx = [self.groups.index(c.group) for c in curves]
        self.loss = np.concatenate([c.loss for c in curves])
        weights = []
        for c in curves:
            w = np.ones(c.steps.shape[0]) if c.weights is None else c.weights
            weights.append(w * (w.shape[0] / w.sum()) if w.sum() > 0 else w)
        self.sqrt_w = np.sqrt(np.concatenate(weights))
        self.slices: list[slice] = []
        start = 0
        for c in curves:
            self.slices.append(slice(start, start + c.steps.shape[0]))
            start += c.steps.shape[0]
        self.n_theta = 3 * self.n_group + self.n_shared
        self.prepared = [self.curve_law.prepare(d, lam) for d in self.designs]
        self._cache: tuple[bytes, FloatArray, FloatArray] | None = None

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        rows = list(_BOUNDS_GROUP) * self.n_group + list(self.curve_law.bounds)
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def names(self) -> list[str]:
        out = [f"{p}[{g}]" for g in self.groups for p in ("L0", "logA", "alpha")]
        return out + list(self.curve_law.coordinates)

    def predict_jac(self, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        # The optimiser asks for residuals and Jacobian at the same point in turn: compute both once.
        key = theta.tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        pred, jac = self._predict_jac(theta)
        self._cache = (key, pred, jac)
        return pred, jac

    def _predict_jac(self, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        n = self.loss.shape[0]
        pred = np.empty(n)
        jac = np.zeros((n, self.n_theta))
        sh = theta[3 * self.n_group :]
        for i, (des, g, sl) in enumerate(zip(self.designs, self.gidx, self.slices, strict=True)):
            l0, log_a, alpha = theta[3 * g : 3 * g + 3]
            pw = np.exp(log_a) * des.s1 ** (-alpha)
            cols = slice(3 * g, 3 * g + 3)
            jac[sl, cols] = np.column_stack([np.ones_like(pw), pw, -pw * np.log(des.s1)])
            drop, d_drop = self.curve_law.drop_jac(des, self.prepared[i], sh)
            pred[sl] = l0 + pw - drop
            jac[sl, 3 * self.n_group :] = -d_drop
        return pred, jac

    def residuals(self, theta: FloatArray) -> FloatArray:
        pred, _ = self.predict_jac(theta)
        return np.asarray(self.sqrt_w * (pred - self.loss), dtype=np.float64)

    def jacobian(self, theta: FloatArray) -> FloatArray:
        _, jac = self.predict_jac(theta)
        return np.asarray(self.sqrt_w[:, None] * jac, dtype=np.float64)


def _linear_start(problem: _Problem, alpha: float, shared: FloatArray) -> tuple[FloatArray, float]:
    """Given alpha (all groups) and the shared nonlinear parameters, the best L0, A (per group) and B or C by
    non-negative least squares on the amplitudes: a cheap screen of the start grid."""
    n = problem.loss.shape[0]
    cols = np.zeros((n, 2 * problem.n_group + 1))
    for i, (des, g, sl) in enumerate(zip(problem.designs, problem.gidx, problem.slices, strict=True)):
        cols[sl, 2 * g] = 1.0
        cols[sl, 2 * g + 1] = des.s1 ** (-alpha)
        cols[sl, -1] = -problem.curve_law.unit_drop(des, problem.prepared[i], shared)
    x_w = cols * problem.sqrt_w[:, None]
    y_w = problem.loss * problem.sqrt_w
    coef, *_ = np.linalg.lstsq(x_w, y_w, rcond=None)
    coef[1::2] = np.maximum(coef[1::2], 1e-6)  # amplitudes A (and B or C) must be positive
    sse = float(np.sum((x_w @ coef - y_w) ** 2))
    theta = np.zeros(problem.n_theta)
    for g in range(problem.n_group):
        theta[3 * g : 3 * g + 3] = (coef[2 * g], np.log(coef[2 * g + 1]), alpha)
    theta[3 * problem.n_group :] = problem.curve_law.from_start(float(coef[-1]), shared)
    return theta, sse


_START_ALPHA = (0.3, 0.5, 0.8)


def fit_curves(
    curves: Sequence[RunCurve],
    *,
    law: str = "multipower",
    fixed_shared: Mapping[str, float] | None = None,
    max_points: int = MAX_POINTS_PER_RUN,
    lam: float = ANNEALING_LAMBDA,
) -> CurveFit:
    """Fit `law` to runs' histories: L0, A, alpha per group, annealing parameters shared (module docstring).

    Each history is binned to at most `max_points` points first. Starts: a grid of alpha and annealing shapes,
    each with its best amplitudes (linear least squares); the three best are polished by trust-region least
    squares with the analytic Jacobian, and the best is kept. When no run's learning rate ever decreases the
    annealing parameters are not identified: they are held (no loss drop) and the fit says so. `fixed_shared`
    holds some or all shared parameters at given values (natural units: B, C, beta, gamma; or C) instead of
    fitting them. `lam` is the annealing law's momentum (lambda).
    Raises FitFailed when a group has fewer than 4 points or the fit does not converge to finite values.
    """
    the_law = curve_law(law)
    if not curves:
        raise FitFailed("no curves to fit")
    work = [binned(c, max_points=max_points) for c in curves]
    work = [c for c in work if c.steps.shape[0] > 0]
    groups = sorted({c.group for c in work})
    for g in groups:
        n = sum(c.steps.shape[0] for c in work if c.group == g)
        if n < 4:
            raise FitFailed(f"group {g!r} has {n} points; a curve fit needs at least 4")
    missing = sorted({c.group for c in curves} - set(groups))
    if missing:
        raise FitFailed(f"no points in group(s) {', '.join(map(repr, missing))}")
    lr_scale = {g: max(c.schedule.peak_lr for c in work if c.group == g) for g in groups}
    problem = _Problem(law, work, lr_scale, lam)
    identified = any(bool(np.any((d.drop > 0) & d.live.any(axis=0))) for d in problem.designs)
    lo, hi = problem.bounds()
    base = 3 * problem.n_group
    names = the_law.shared_params
    fixed = dict(fixed_shared or {})
    unknown = sorted(set(fixed) - set(names))
    if unknown:
        raise ValueError(f"unknown shared parameters: {', '.join(unknown)}")
    if not identified:
        fixed = dict(the_law.unidentified)
    free = np.ones(problem.n_theta, dtype=bool)
    held_values = np.full(problem.n_shared, np.nan)
    for j, name in enumerate(names):
        if name in fixed:
            free[base + j] = False
            held_values[j] = the_law.coordinate(name, fixed[name])

    starts: list[tuple[float, FloatArray]] = []
    shapes = the_law.start_shapes()
    for shape in shapes:
        shape[np.isfinite(held_values)] = held_values[np.isfinite(held_values)]
    unique_shapes = {tuple(x): x for x in shapes}.values()
    for alpha in _START_ALPHA:
        for shape in unique_shapes:
            theta, sse = _linear_start(problem, alpha, shape)
            theta = np.where(free, np.clip(theta, lo, hi), theta)
            theta[base:][np.isfinite(held_values)] = held_values[np.isfinite(held_values)]
            starts.append((sse, theta))
    starts.sort(key=lambda item: item[0])

    best: tuple[float, FloatArray] | None = None
    for _, theta0 in starts[:3]:
        polished = _polish(problem, theta0, free, lo, hi)
        if polished is None:
            continue
        cost = float(np.sum(problem.residuals(polished) ** 2))
        if best is None or cost < best[0]:
            best = (cost, polished)
    if best is None:
        raise FitFailed("the curve fit did not converge to finite parameters")
    return _assemble(problem, best[1], free, work, lr_scale, identified)


def _polish(
    problem: _Problem, theta0: FloatArray, free: FloatArray, lo: FloatArray, hi: FloatArray
) -> FloatArray | None:
    """Trust-region least squares over the free coordinates; None if it ends non-finite."""
    mask = np.asarray(free, dtype=bool)
    full = theta0.copy()

    def res(x: FloatArray) -> FloatArray:
        full[mask] = x
        return problem.residuals(full)

    def jac(x: FloatArray) -> FloatArray:
        full[mask] = x
        return problem.jacobian(full)[:, mask]

    eps = 1e-9 * (hi[mask] - lo[mask])
    x0 = np.clip(theta0[mask], lo[mask] + eps, hi[mask] - eps)
    with np.errstate(all="ignore"):
        out = least_squares(res, x0, jac=jac, bounds=(lo[mask], hi[mask]), method="trf", x_scale="jac", max_nfev=300)
    theta = theta0.copy()
    theta[mask] = out.x
    if not np.all(np.isfinite(theta)) or not np.all(np.isfinite(problem.residuals(theta))):
        return None
    return theta


def _assemble(
    problem: _Problem,
    theta: FloatArray,
    free: FloatArray,
    curves: Sequence[RunCurve],
    lr_scale: Mapping[str, float],
    identified: bool,
) -> CurveFit:
    """Natural parameters, the autocorrelation-inflated covariance and the fit's metrics."""
    resid = problem.residuals(theta)
    jac = problem.jacobian(theta)
    mask = np.asarray(free, dtype=bool)
    n, p = resid.shape[0], int(mask.sum())
    dof = max(n - p, 1)
    s2 = float(resid @ resid) / dof
    # Residuals of a curve fit are serially correlated (misfit is smooth in t): with lag-one correlation rho the
    # information in n points is that of about n (1 - rho) / (1 + rho), so the covariance is inflated by the inverse.
    rho = _lag_one_correlation(resid, problem.slices)
    inflation = (1.0 + rho) / (1.0 - rho)
    cov = np.zeros((problem.n_theta, problem.n_theta))
    jm = jac[:, mask]
    with np.errstate(all="ignore"):
        cov_free = np.linalg.pinv(jm.T @ jm) * s2 * inflation
    cov[np.ix_(mask, mask)] = cov_free
    groups = {}
    for gi, g in enumerate(problem.groups):
        l0, log_a, alpha = theta[3 * gi : 3 * gi + 3]
        groups[g] = {"L0": float(l0), "A": float(np.exp(log_a)), "alpha": float(alpha)}
    shared = problem.curve_law.shared_from(theta[3 * problem.n_group :], identified)
    raw = (resid / np.where(problem.sqrt_w > 0, problem.sqrt_w, 1.0))[problem.sqrt_w > 0]
    warnings = []
    if not identified:
        warnings.append("no fitted run's learning rate decreased: the annealing parameters are not identified")
    lo, hi = problem.bounds()
    names = problem.names()
    for j in np.flatnonzero(mask):
        tol = 1e-6 * (hi[j] - lo[j])
        if theta[j] <= lo[j] + tol or theta[j] >= hi[j] - tol:
            warnings.append(f"{names[j]} ended on a bound")
    return CurveFit(
        law=problem.law,
        groups=groups,
        shared=shared,
        lr_scale={g: float(v) for g, v in lr_scale.items()},
        theta=theta,
        theta_names=names,
        covariance=cov,
        runs=[c.run for c in curves],
        metrics={
            "n_points": float(n),
            "n_runs": float(len(curves)),
            "rmse": float(np.sqrt(np.mean(raw**2))) if raw.shape[0] else float("nan"),
            "residual_sd": float(np.sqrt(s2)),
            "lag_one_correlation": float(rho),
        },
        annealing_identified=identified,
        warnings=warnings,
        lam=problem.lam,
    )


def _lag_one_correlation(resid: FloatArray, slices: Sequence[slice]) -> float:
    """Pooled lag-one autocorrelation of residuals within each curve, clipped to [0, 0.98]."""
    num = den = 0.0
    for sl in slices:
        r = resid[sl]
        if r.shape[0] < 3:
            continue
        r = r - r.mean()
        num += float(r[1:] @ r[:-1])
        den += float(r @ r)
    if den <= 0:
        return 0.0
    return float(np.clip(num / den, 0.0, 0.98))


def prediction_gradient(
    fit: CurveFit, schedule: Schedule, steps: npt.ArrayLike, group: str
) -> tuple[FloatArray, FloatArray]:
    """The fitted loss at `steps` and its gradient in the fit's optimiser coordinates: (loss, grad) with grad of
    shape (n_steps, len(theta)). Variance of the prediction = grad @ covariance @ grad.T (delta method)."""
    st = np.asarray(steps, dtype=np.float64).reshape(-1)
    probe = RunCurve(run="probe", steps=st, loss=np.zeros_like(st), schedule=schedule, group=group)
    problem = _Problem(fit.law, [probe], {group: fit.lr_scale[group]}, fit.lam)
    # Re-lay the fit's theta onto this one-group problem: the group's three coordinates, then the shared ones.
    gi = sorted(fit.groups).index(group)
    n_groups = len(fit.groups)
    local = np.concatenate([fit.theta[3 * gi : 3 * gi + 3], fit.theta[3 * n_groups :]])
    pred, jac_local = problem.predict_jac(local)
    grad = np.zeros((st.shape[0], fit.theta.shape[0]))
    grad[:, 3 * gi : 3 * gi + 3] = jac_local[:, :3]
    grad[:, 3 * n_groups :] = jac_local[:, 3:]
    return pred, grad


# ---------------------------------------------------------------------------------------------------------------
# The schedule-blind baseline


@dataclass(frozen=True)
class PowerFit:
    """L0 + A t^(-alpha) fitted to one run's history in steps."""

    params: dict[str, float]
    rmse: float

    def predict(self, steps: npt.ArrayLike) -> FloatArray:
        return power_loss(self.params, steps)


def fit_power(
    steps: npt.ArrayLike, loss: npt.ArrayLike, *, max_points: int = MAX_POINTS_PER_RUN, objective: str = "huber"
) -> PowerFit:
    """The schedule-blind baseline: L0 + A t^(-alpha) in steps over the binned history, 0 <= L0 <= min loss.

    The objective is the project's (fits.laws.fitting): Huber (delta = 1e-3) on log-loss residuals, or
    ``least_squares`` on them. The law ignores the learning rate, so it cannot see a decay coming: the reference a
    schedule-aware forecast is measured against, and the fallback when a run has no schedule. Raises FitFailed
    under 4 points.
    """
    if objective not in ("huber", "least_squares"):
        raise ValueError("objective must be huber or least_squares")
    st, ls, counts = bin_history(steps, loss, max_points=max_points)
    if st.shape[0] < 4:
        raise FitFailed(f"{st.shape[0]} points; a power law needs at least 4")
    sw = np.sqrt(counts * (counts.shape[0] / counts.sum()))
    log_t = np.log(st)
    log_l = np.log(ls)

    def res(x: FloatArray) -> FloatArray:
        return np.asarray(sw * (np.log(x[0] + np.exp(x[1] - x[2] * log_t)) - log_l), dtype=np.float64)

    def jac(x: FloatArray) -> FloatArray:
        pw = np.exp(x[1] - x[2] * log_t)
        pred = x[0] + pw
        cols = np.column_stack([np.ones_like(pw), pw, -pw * log_t]) / pred[:, None]
        return np.asarray(sw[:, None] * cols, dtype=np.float64)

    robust = {"loss": "huber", "f_scale": HUBER_DELTA} if objective == "huber" else {"loss": "linear"}
    best = None
    for alpha in (0.2, 0.5, 1.0):
        x_lin = np.column_stack([np.ones_like(st), st**-alpha]) * sw[:, None]
        coef, *_ = np.linalg.lstsq(x_lin, ls * sw, rcond=None)
        x0 = np.array([min(max(coef[0], 1e-6), 0.999 * float(ls.min())), np.log(max(coef[1], 1e-6)), alpha])
        with np.errstate(all="ignore"):
            out = least_squares(
                res,
                x0,
                jac=jac,
                bounds=([0.0, -30.0, 0.01], [float(ls.min()), 30.0, 3.0]),
                method="trf",
                max_nfev=500,
                **robust,
            )
        if np.all(np.isfinite(out.x)) and (best is None or out.cost < best.cost):
            best = out
    if best is None:
        raise FitFailed("the power law did not converge")
    x = best.x
    rmse = float(np.sqrt(np.mean((x[0] + np.exp(x[1] - x[2] * log_t) - ls) ** 2)))
    return PowerFit(params={"L0": float(x[0]), "A": float(np.exp(x[1])), "alpha": float(x[2])}, rmse=rmse)


__all__ = [
    "ANNEALING_LAMBDA",
    "CURVE_LAWS",
    "CURVE_LAW_REGISTRY",
    "MAX_DROP_BLOCKS",
    "MAX_POINTS_PER_RUN",
    "AnnealingLaw",
    "CurveFit",
    "CurveLaw",
    "MultiPowerLaw",
    "PowerFit",
    "RunCurve",
    "annealing_loss",
    "bin_history",
    "binned",
    "curve_law",
    "fit_curves",
    "fit_power",
    "multipower_loss",
    "power_loss",
    "prediction_gradient",
]
