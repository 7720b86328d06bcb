"""Compute-optimal planning: how big, how long and in how many bits, for a given compute budget.

Pure NumPy/SciPy (no Django). The maths follows `docs/laws.md` sections 2 (closed-form Chinchilla
allocation), 6 (precision cost model, compute-optimal precision), 7 (hardware profiles, budgets) and
8.1 (weights memory).

Budgets
    A budget is a number of 16-bit-equivalent model FLOPs, counted as C = 6*N*D at 16 bits (the
    contract in `docs/api.md`). GPU-hours convert through the hardware's dense 16-bit peak and an
    attained model-FLOPs utilisation (MFU): C = hours * 3600 * peak_16 * mfu (`budget_to_flops`).

Cost models (`cost_factor`)
    A training configuration costs 6*N*D*cost_factor(bits) budget FLOPs, so the tokens affordable at
    a given N are D = C / (6*N*cost_factor). P = max(weight_bits, activation_bits) is the precision of
    the matrix multiplies (KV bits do not change the cost).
    - `linear_bits` (Kumar et al. 2024, arXiv:2411.04330, Sec. 4.3): cost_factor = P/16.
    - `hardware`: cost_factor = peak_16 / peak(narrowest native format holding P bits). On H100
      8-bit runs at twice the 16-bit rate and 4-bit gets no further speed-up; B200 adds FP4 (4x).
      The same MFU is applied to every format, so the speed-ups are the datasheet peak ratios; real
      FP8 end-to-end gains are 1.2-1.6x (laws.md 7.3): build a `HardwareProfile` with a lower
      8-bit peak to model that.

The loss model: `LossFn`
    A callable ``loss_fn(n_params, n_tokens, weight_bits, activation_bits, kv_bits, post_train_bits)``
    taking float64 arrays that broadcast against each other (the planner passes N and D of shape
    (K, J) and bits of shape (K, 1): K bit configurations by J model sizes) and
    ``post_train_bits`` either None (no PTQ) or an array broadcastable the same way. It returns
    the predicted validation loss (nats) of the broadcast shape, NaN where a configuration lies
    outside the law's domain; NaN configurations are never recommended. The planner only passes
    post_train_bits for configurations with post_train_bits < weight_bits; the others are
    evaluated with None. ``fits.laws.predict_loss`` fits it as
    ``lambda n, d, w, a, kv, post: predict_loss(law, params, n_params=n, n_tokens=d, weight_bits=w,
    activation_bits=a, kv_bits=kv, post_train_bits=post)``.

    Bootstrap draws use the same signature, returning shape (S, *broadcast shape) for S draws
    (e.g. the same law with every parameter an array of shape (S, 1, 1)).

The search: `plan_search`
    Over K bit configurations (weights, activations, KV; tied or untied, from `bits_choices` or
    the fixed widths) times model sizes N: a shared coarse log-spaced grid of N, plus, per
    configuration, the N where the memory cap or n_params_max binds and the N where D reaches
    n_tokens_max; then a fine grid of 17 points around each configuration's best and one parabolic
    step in log N. Along the iso-cost line the Chinchilla and Kumar losses are convex in log N
    (sums of exponentials of log N), and with a token cap they are decreasing-then-convex, so
    this finds the optimum to far better than 1%. Everything is evaluated in three vectorised calls
    of ``loss_fn`` (one per stage; two when PTQ splits the configurations). The 16-bit baseline is the
    same search with all bits fixed at 16 (PTQ still applied); the alternatives are the best
    configuration per other matmul precision max(weight_bits, activation_bits), up to 5, by loss.

    optimum_spread: per draw, the argmin over a candidate subset (configurations within 1 bit of the
    recommendation on every axis, the best per matmul precision, the 32 best overall) and a window of
    +-1.5 decades of N around each configuration's central optimum (25 points, one parabolic step), all
    draws in one call of shape (S, K, 25). Draws whose optimum reaches the window's edge are counted in
    `fraction_at_window_edge` (a warning above 5%). Ranges are 2.5th-97.5th percentiles (N, D in log).

    n_tokens_max (data-limited teams): D = min(C / (6*N*cost_factor), n_tokens_max). Below the crossover
    N_x = C / (6*cost_factor*n_tokens_max) the tokens are capped, budget is left unused and the loss only
    falls as N grows, so the optimum is max(N_x, unconstrained optimum): when the cap binds the plan trains
    a larger model on exactly n_tokens_max tokens and still spends the whole budget (N_x is added to the
    grid, so it is found exactly). Budget is left unused only when N is capped too (n_params_max, memory
    cap or a fixed n_params below N_x); `compute_flops` reports what the plan spends.

    post_train_bits: the loss is evaluated after PTQ to that precision for configurations trained
    at more weight bits. A configuration trained at post_train_bits weight bits or fewer is
    deployed as trained: no PTQ, and its `post_train_bits` is reported as None. Deployed weights
    memory is N * deployed_bits / 8 bytes (laws.md 8.1, scale overhead not included), with
    deployed_bits = post_train_bits when PTQ applies, else weight_bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize

FloatArray = npt.NDArray[np.float64]
LossFn = Callable[[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray | None], FloatArray]
CostModel = Literal["linear_bits", "hardware"]

FLOPS_PER_PARAM_TOKEN = 6.0
BASE_BITS = 16.0
DEFAULT_CANDIDATE_BITS: tuple[float, ...] = tuple(float(b) for b in range(3, 17))
DEFAULT_MFU = 0.40  # laws.md 7.3: one H100 in BF16 attains 35-45% MFU
# Search range in tokens per parameter at 16-bit cost: C/6 = N*D with D/N in [1e-2, 1e5].
MIN_TOKENS_PER_PARAM = 1e-2
MAX_TOKENS_PER_PARAM = 1e5
MAX_N_PARAMS = 1e14  # docs/api.md: 1 <= N <= 1e14
MIN_N_PARAMS = 1.0
COARSE_POINTS = 48
FINE_POINTS = 17
SPREAD_HALF_WIDTH_DECADES = 1.5
SPREAD_POINTS = 25
SPREAD_TOP_CONFIGS = 32
MAX_BIT_CONFIGURATIONS = 20_000
# The smallest budget the search can plan: one parameter trained on one token. Below it (5e-324 FLOPs, or a
# tiny gpu_hours) no model size exists and the search's logarithms are undefined.
MIN_BUDGET_FLOPS = FLOPS_PER_PARAM_TOKEN * MIN_N_PARAMS


class PlanningError(ValueError):
    """The inputs admit no plan (contradictory constraints, or no configuration inside the law's domain)."""


# --------------------------------------------------------------------------------------------------
# Hardware and budgets


@dataclass(frozen=True)
class HardwareProfile:
    """One accelerator: dense peak FLOP/s per native number-format width, and an attained MFU.

    `peak_flops` maps a format width in bits to the dense tensor-core peak at that width (FP or INT,
    whichever is faster); a training precision of P bits runs in the narrowest native format with
    at least P bits.
    """

    name: str
    peak_flops: Mapping[float, float]
    mfu: float = DEFAULT_MFU
    memory_bytes: float | None = None

    def __post_init__(self) -> None:
        if BASE_BITS not in self.peak_flops:
            raise ValueError(f"{self.name}: a 16-bit peak is required")
        if not 0.0 < self.mfu <= 1.0:
            raise ValueError(f"{self.name}: mfu must be in (0, 1], got {self.mfu}")

    def with_mfu(self, mfu: float) -> HardwareProfile:
        """The same profile with another attained MFU."""
        return replace(self, mfu=mfu)

    def native_format_bits(self, bits: npt.ArrayLike) -> FloatArray:
        """The narrowest native format width holding `bits` (the widest format above all of them)."""
        widths = np.array(sorted(self.peak_flops), dtype=np.float64)
        b = np.asarray(bits, dtype=np.float64)
        idx = np.searchsorted(widths, b - 1e-9, side="left")
        return widths[np.minimum(idx, widths.size - 1)]

    def peak_at(self, bits: npt.ArrayLike) -> FloatArray:
        """Dense peak FLOP/s when training at `bits` bits."""
        widths = np.array(sorted(self.peak_flops), dtype=np.float64)
        peaks = np.array([self.peak_flops[w] for w in sorted(self.peak_flops)], dtype=np.float64)
        b = np.asarray(bits, dtype=np.float64)
        idx = np.searchsorted(widths, b - 1e-9, side="left")
        return peaks[np.minimum(idx, widths.size - 1)]


# Dense peaks from laws.md 7.2 (NVIDIA datasheets; sparse headline numbers halved). 32-bit entries are
# the dense TF32 tensor-core rates from the same datasheets. A100 INT4 (1248 TOPS) is left out: it is
# [uncertain] in laws.md and no training stack uses it.
HARDWARE_PROFILES: Mapping[str, HardwareProfile] = {
    "a100": HardwareProfile("a100", {8.0: 624e12, 16.0: 312e12, 32.0: 156e12}, memory_bytes=80e9),
    "h100": HardwareProfile("h100", {8.0: 1978.9e12, 16.0: 989.4e12, 32.0: 494.7e12}, memory_bytes=80e9),
    "h200": HardwareProfile("h200", {8.0: 1979e12, 16.0: 989e12, 32.0: 494.5e12}, memory_bytes=141e9),
    "b200": HardwareProfile(
        "b200", {4.0: 9e15, 6.0: 4.5e15, 8.0: 4.5e15, 16.0: 2.25e15, 32.0: 1.125e15}, memory_bytes=180e9
    ),
}


def get_hardware(hardware: str | HardwareProfile, mfu: float | None = None) -> HardwareProfile:
    """A hardware profile by name (case-insensitive) or as given, with `mfu` overriding its default."""
    profile = hardware if isinstance(hardware, HardwareProfile) else None
    if profile is None:
        key = str(hardware).lower().replace("-", "").replace("_", "")
        if key not in HARDWARE_PROFILES:
            raise ValueError(f"unknown hardware {hardware!r}; known: {', '.join(sorted(HARDWARE_PROFILES))}")
        profile = HARDWARE_PROFILES[key]
    return profile if mfu is None else profile.with_mfu(mfu)


def budget_to_flops(
    flops: float | None = None,
    gpu_hours: float | None = None,
    hardware: str | HardwareProfile | None = None,
    mfu: float | None = None,
) -> float:
    """The budget in 16-bit-equivalent model FLOPs (6*N*D at 16 bits), from FLOPs or GPU-hours.

    GPU-hours convert at the hardware's dense 16-bit peak times its MFU (laws.md 7.1); the faster
    low-precision formats are accounted for by the `hardware` cost model, not here.
    """
    if (flops is None) == (gpu_hours is None):
        raise ValueError("give exactly one of flops or gpu_hours")
    if flops is not None:
        if not (math.isfinite(flops) and flops > 0):
            raise ValueError(f"flops must be finite and positive, got {flops}")
        return float(flops)
    assert gpu_hours is not None
    if not (math.isfinite(gpu_hours) and gpu_hours > 0):
        raise ValueError(f"gpu_hours must be finite and positive, got {gpu_hours}")
    if hardware is None:
        raise ValueError("gpu_hours needs a hardware profile")
    profile = get_hardware(hardware, mfu)
    return float(gpu_hours * 3600.0 * profile.peak_flops[BASE_BITS] * profile.mfu)


def cost_factor(
    weight_bits: npt.ArrayLike,
    activation_bits: npt.ArrayLike,
    *,
    cost_model: CostModel,
    hardware: str | HardwareProfile | None = None,
) -> FloatArray:
    """Budget FLOPs per 16-bit model FLOP when training at these bits (1 at 16 bits), vectorised.

    `linear_bits`: P/16 with P = max(weight_bits, activation_bits) (Kumar's C = (6/16)*N*D*P).
    `hardware`: peak_16 / peak(P) on the given hardware (H100 when None).
    """
    p = np.maximum(np.asarray(weight_bits, dtype=np.float64), np.asarray(activation_bits, dtype=np.float64))
    if cost_model == "linear_bits":
        return p / BASE_BITS
    if cost_model == "hardware":
        profile = get_hardware(hardware if hardware is not None else "h100")
        return profile.peak_flops[BASE_BITS] / profile.peak_at(p)
    raise ValueError(f"unknown cost model {cost_model!r}")


def tokens_for_budget(n_params: npt.ArrayLike, budget_flops: float, factor: npt.ArrayLike) -> FloatArray:
    """Tokens affordable on the iso-cost surface: D = C / (6 * N * cost_factor)."""
    n = np.asarray(n_params, dtype=np.float64)
    return budget_flops / (FLOPS_PER_PARAM_TOKEN * n * np.asarray(factor, dtype=np.float64))


# --------------------------------------------------------------------------------------------------
# Closed forms


@dataclass(frozen=True)
class Allocation:
    """A compute allocation: model size and training tokens."""

    n_params: float
    n_tokens: float

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params


def compute_optimal_allocation(A: float, B: float, alpha: float, beta: float, compute: float) -> Allocation:
    """Chinchilla closed form (laws.md 2.2, Hoffmann et al. 2022 eq. 4) under C = 6*N*D.

    G = (alpha*A / (beta*B))^(1/(alpha+beta)); N_opt = G*(C/6)^(beta/(alpha+beta));
    D_opt = G^-1 * (C/6)^(alpha/(alpha+beta)). E does not move the optimum.
    """
    g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    c6 = compute / FLOPS_PER_PARAM_TOKEN
    return Allocation(n_params=g * c6 ** (beta / (alpha + beta)), n_tokens=c6 ** (alpha / (alpha + beta)) / g)


def argmin_on_isoflop(A: float, B: float, alpha: float, beta: float, compute: float) -> Allocation:
    """Numerical check of `compute_optimal_allocation`: minimise A/N^alpha + B/D^beta with D = C/(6N)."""
    c6 = compute / FLOPS_PER_PARAM_TOKEN

    def loss(log_n: float) -> float:
        n = math.exp(log_n)
        return float(A * n**-alpha + B * (c6 / n) ** -beta)

    half = 0.5 * math.log(c6)
    res = optimize.minimize_scalar(loss, bounds=(half - 25.0, half + 25.0), method="bounded", options={"xatol": 1e-10})
    n_opt = math.exp(float(res.x))
    return Allocation(n_params=n_opt, n_tokens=c6 / n_opt)


def compute_optimal_precision(
    gammas: Sequence[float],
    offsets: Sequence[float] | None = None,
    *,
    bounds: tuple[float, float] = (1.0, 64.0),
) -> float:
    """Kumar's tied compute-optimal precision (laws.md 6.3) under C proportional to N*D*P.

    With N_eff = N * f(P), f(P) = prod_x (1 - exp(-P/gamma_x + n_x)), setting dL/dN = dL/dP = 0 gives
    P f'(P) = f(P), i.e. P* maximises f(P)/P; it does not depend on A, B, alpha, beta or C. With three
    equal gammas and no offsets, P* solves exp(P/gamma) = 1 + 3P/gamma: P* = 1.9038*gamma.
    """
    g = np.asarray(gammas, dtype=np.float64)
    n = np.zeros_like(g) if offsets is None else np.asarray(offsets, dtype=np.float64)

    def neg_efficiency(p: float) -> float:
        factors = 1.0 - np.exp(-p / g + n)
        # Every factor must be positive: two negative ones would multiply to a spurious positive N_eff.
        return float(-np.prod(factors) / p) if np.all(factors > 0) else float(np.inf)

    lo, hi = bounds
    grid = np.linspace(lo, hi, 2048)
    vals = np.array([neg_efficiency(float(p)) for p in grid])
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(
        neg_efficiency, bounds=(float(a), float(b)), method="bounded", options={"xatol": 1e-10}
    )
    return float(res.x)


# --------------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class PlanConstraints:
    """The contract's plan constraints (docs/api.md, Plans); None means unconstrained."""

    n_params: float | None = None
    n_params_max: float | None = None
    n_tokens_max: float | None = None
    weight_bits: float | None = None
    activation_bits: float | None = None
    kv_bits: float | None = None
    bits_choices: tuple[float, ...] | None = None
    post_train_bits: float | None = None
    weights_memory_max_bytes: float | None = None

    def __post_init__(self) -> None:
        for name in ("n_params", "n_params_max", "n_tokens_max", "weights_memory_max_bytes"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise PlanningError(f"{name} must be finite and positive, got {value}")
        for name in ("weight_bits", "activation_bits", "kv_bits", "post_train_bits"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 1 <= value <= 32):
                raise PlanningError(f"{name} must be between 1 and 32, got {value}")
        if self.bits_choices is not None:
            if not self.bits_choices:
                raise PlanningError("bits_choices must not be empty")
            if not all(math.isfinite(b) and 1 <= b <= 32 for b in self.bits_choices):
                raise PlanningError("bits_choices must lie between 1 and 32")
        if self.n_params is not None and self.n_params_max is not None and self.n_params > self.n_params_max:
            raise PlanningError("n_params exceeds n_params_max")


@dataclass(frozen=True)
class PlanConfig:
    """One trainable configuration and its predicted loss."""

    n_params: int
    n_tokens: int
    tokens_per_param: float
    weight_bits: float
    activation_bits: float
    kv_bits: float
    post_train_bits: float | None  # None: deployed as trained (no PTQ)
    predicted_loss: float
    compute_flops: float  # budget FLOPs spent: 6*N*D*cost_factor (16-bit-equivalent)
    weights_memory_bytes: float
    predicted_loss_interval: tuple[float, float] | None = None  # 95% across bootstrap draws


@dataclass(frozen=True)
class BoundFlags:
    """Where the optimum sits against the search's edges and the user's constraints."""

    n_params_at_search_min: bool = False
    n_params_at_search_max: bool = False
    n_params_max_binding: bool = False
    memory_cap_binding: bool = False
    n_tokens_max_binding: bool = False
    bits_at_min: tuple[str, ...] = ()  # names of the searched bit widths at the smallest candidate
    bits_at_max: tuple[str, ...] = ()

    @property
    def on_search_bound(self) -> bool:
        return self.n_params_at_search_min or self.n_params_at_search_max or bool(self.bits_at_min or self.bits_at_max)


@dataclass(frozen=True)
class OptimumSpread:
    """The optimum's variability across bootstrap draws: 95% ranges (2.5th and 97.5th percentiles)."""

    n_draws: int
    n_valid_draws: int  # draws with at least one in-domain configuration
    n_params: tuple[float, float]
    n_tokens: tuple[float, float]
    weight_bits: tuple[float, float]
    activation_bits: tuple[float, float]
    kv_bits: tuple[float, float]
    predicted_loss: tuple[float, float]  # of the recommended configuration, evaluated per draw
    fraction_at_window_edge: float  # draws whose optimal N hit the edge of the per-draw search window


@dataclass(frozen=True)
class PrecisionChoice:
    """How the recommendation's bit widths were decided (the meaningful-difference rule, `plan_search`).

    `reference` is the reference precision the plan keeps unless departing from it gains more than its
    uncertainty; `point_best` the widths of the lowest predicted loss; `chosen` the widths recommended. `gain` is
    the reference plan's predicted loss minus the chosen plan's (each at its own best N and D), `gain_interval`
    its 95% range over the bootstrap draws (paired: both plans under the same draw); likewise `point_best_gain`.
    `kept_reference` names the dimensions held at the reference width because narrowing them gained nothing the
    draws could tell from zero. `decided`: "reference" (the point best is the reference, or no departure gained
    meaningfully), "departure" (every departure kept gains meaningfully), "partial" (some kept, some reverted),
    "no_draws" (no uncertainty to judge the gain: the reference is kept).
    """

    reference: tuple[float, float, float]
    point_best: tuple[float, float, float]
    chosen: tuple[float, float, float]
    gain: float
    gain_interval: tuple[float, float] | None
    point_best_gain: float
    point_best_gain_interval: tuple[float, float] | None
    kept_reference: tuple[str, ...]
    n_draws: int
    decided: str


@dataclass(frozen=True)
class PlanResult:
    """A plan: the recommendation, the 16-bit baseline at the same budget, alternatives and diagnostics."""

    recommendation: PlanConfig
    baseline: PlanConfig | None  # None when no 16-bit configuration satisfies the constraints
    alternatives: tuple[PlanConfig, ...]
    bounds: BoundFlags
    optimum_spread: OptimumSpread | None
    budget_flops: float
    cost_model: CostModel
    hardware: str | None
    warnings: tuple[str, ...]
    n_evaluations: int
    search_n_params_range: tuple[float, float]
    candidate_bits: tuple[float, ...] = field(default=())
    precision_choice: PrecisionChoice | None = None  # with a reference precision (plan_search's reference_bits)

    @property
    def loss_improvement_over_baseline(self) -> float | None:
        """Baseline loss minus the recommendation's (positive: the recommendation is better)."""
        if self.baseline is None:
            return None
        return self.baseline.predicted_loss - self.recommendation.predicted_loss


@dataclass(frozen=True)
class _Problem:
    """Everything the per-configuration search needs, for K bit configurations."""

    loss_fn: LossFn
    budget: float
    bits: FloatArray  # (K, 3): weight, activation, kv
    factor: FloatArray  # (K,)
    ptq: npt.NDArray[np.bool_]  # (K,): PTQ applies (post_train_bits < weight_bits)
    post_train_bits: float | None
    x_lo: float  # log N search bounds
    x_hi: float
    x_cap: FloatArray  # (K,) log of the largest N allowed (n_params_max, memory cap, search max)
    d_max: float  # token cap (inf when none)
    x_fixed: float | None


def _evaluate(problem: _Problem, loss_fn: LossFn, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Loss at log-sizes x (K, J), shape (K, J) or (S, K, J) for draws, inf where infeasible or NaN; and D."""
    n = np.exp(x)
    factor = problem.factor[:, None]
    # N = 0 at an infeasible -inf cap, or so small that D overflows: D is inf there, and so is its loss.
    with np.errstate(divide="ignore", over="ignore"):
        d = np.minimum(problem.budget / (FLOPS_PER_PARAM_TOKEN * n * factor), problem.d_max)
    wb, ab, kvb = (problem.bits[:, i : i + 1] for i in range(3))
    out: FloatArray | None = None
    groups: list[tuple[npt.NDArray[np.bool_], float | None]] = [(~problem.ptq, None)]
    if problem.post_train_bits is not None:
        groups = [(~problem.ptq, None), (problem.ptq, problem.post_train_bits)]
    for mask, post in groups:
        if not mask.any():
            continue
        post_arr = None if post is None else np.full((int(mask.sum()), 1), post, dtype=np.float64)
        # Losses that are not finite (N = 0, D = inf) are infeasible below, so their arithmetic warnings say nothing.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            vals = np.asarray(loss_fn(n[mask], d[mask], wb[mask], ab[mask], kvb[mask], post_arr), dtype=np.float64)
        if out is None:
            out = np.full(vals.shape[:-2] + x.shape, np.nan, dtype=np.float64)
        out[..., mask, :] = vals
    assert out is not None
    feasible = (x <= problem.x_cap[:, None] + 1e-12) & (d >= 1.0)
    loss = np.where(feasible & np.isfinite(out), out, np.inf)
    return loss, d


def _search_configs(problem: _Problem) -> tuple[FloatArray, FloatArray, int]:
    """Per configuration: the best log N and its loss (inf when nothing is in domain); and evaluations."""
    k = problem.bits.shape[0]
    if problem.x_fixed is not None:
        x = np.full((k, 1), problem.x_fixed)
        loss, _ = _evaluate(problem, problem.loss_fn, x)
        return x[:, 0], loss[:, 0], k
    coarse = np.linspace(problem.x_lo, problem.x_hi, COARSE_POINTS)
    step = coarse[1] - coarse[0] if COARSE_POINTS > 1 and problem.x_hi > problem.x_lo else 0.0
    # The N where D reaches the token cap: below it D is capped (budget left unused).
    if math.isfinite(problem.d_max):
        x_cross = np.log(problem.budget / (FLOPS_PER_PARAM_TOKEN * problem.factor * problem.d_max))
    else:
        x_cross = np.full(k, problem.x_lo)
    extras = np.stack([problem.x_cap, np.minimum(np.maximum(x_cross, problem.x_lo), problem.x_cap)], axis=1)
    x1 = np.concatenate([np.broadcast_to(coarse, (k, coarse.size)), extras], axis=1)
    loss1, _ = _evaluate(problem, problem.loss_fn, x1)
    best = np.argmin(loss1, axis=1)
    x_best = x1[np.arange(k), best]
    # Fine grid around each configuration's best, clipped to its feasible range.
    offsets = np.linspace(-step, step, FINE_POINTS)
    x2 = np.clip(x_best[:, None] + offsets[None, :], problem.x_lo, problem.x_cap[:, None])
    x2 = np.where(problem.x_cap[:, None] < problem.x_lo, problem.x_cap[:, None], x2)
    loss2, _ = _evaluate(problem, problem.loss_fn, x2)
    # One parabolic step in log N through the fine grid's best and its neighbours.
    j = np.clip(np.argmin(loss2, axis=1), 1, FINE_POINTS - 2)
    rows = np.arange(k)
    xa, xb, xc = x2[rows, j - 1], x2[rows, j], x2[rows, j + 1]
    fa, fb, fc = loss2[rows, j - 1], loss2[rows, j], loss2[rows, j + 1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        num = (xb - xa) ** 2 * (fb - fc) - (xb - xc) ** 2 * (fb - fa)
        den = (xb - xa) * (fb - fc) - (xb - xc) * (fb - fa)
        x_vertex = xb - 0.5 * num / den
    ok = np.isfinite(x_vertex) & (x_vertex >= np.minimum(xa, xc)) & (x_vertex <= np.maximum(xa, xc))
    x3 = np.where(ok, x_vertex, xb)[:, None]
    loss3, _ = _evaluate(problem, problem.loss_fn, x3)
    x_all = np.concatenate([x1, x2, x3], axis=1)
    loss_all = np.concatenate([loss1, loss2, loss3], axis=1)
    best_all = np.argmin(loss_all, axis=1)
    n_eval = k * (x1.shape[1] + x2.shape[1] + 1)
    return x_all[rows, best_all], loss_all[rows, best_all], n_eval


def _bit_configurations(constraints: PlanConstraints, tie_bits: bool) -> tuple[FloatArray, tuple[float, ...]]:
    """The (K, 3) array of (weight, activation, kv) bits to search, and the candidate widths."""
    candidates = tuple(sorted(set(constraints.bits_choices or DEFAULT_CANDIDATE_BITS)))
    fixed = (constraints.weight_bits, constraints.activation_bits, constraints.kv_bits)
    if tie_bits:
        values = {f for f in fixed if f is not None}
        if len(values) > 1:
            raise PlanningError("tied bits: the fixed weight, activation and KV bits differ")
        widths = list(values) if values else list(candidates)
        return np.array([[b, b, b] for b in widths], dtype=np.float64), candidates
    axes = [np.array([f]) if f is not None else np.array(candidates) for f in fixed]
    count = math.prod(axis.size for axis in axes)  # before the grid is built: 512 widths untied are 134M rows
    if count > MAX_BIT_CONFIGURATIONS:
        raise PlanningError(f"{count} bit configurations: narrow bits_choices or tie the bits")
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid.astype(np.float64), candidates


def _make_problem(
    loss_fn: LossFn,
    budget: float,
    bits: FloatArray,
    constraints: PlanConstraints,
    cost_model: CostModel,
    hardware: HardwareProfile | None,
) -> _Problem:
    factor = cost_factor(bits[:, 0], bits[:, 1], cost_model=cost_model, hardware=hardware)
    post = constraints.post_train_bits
    ptq = bits[:, 0] > post if post is not None else np.zeros(bits.shape[0], dtype=bool)
    deployed = np.where(ptq, post if post is not None else 0.0, bits[:, 0])
    c6 = budget / FLOPS_PER_PARAM_TOKEN
    n_lo = max(MIN_N_PARAMS, math.sqrt(c6 / MAX_TOKENS_PER_PARAM))
    n_hi = min(MAX_N_PARAMS, math.sqrt(c6 / MIN_TOKENS_PER_PARAM))
    if constraints.n_params_max is not None:
        n_hi = min(n_hi, constraints.n_params_max)
        n_lo = min(n_lo, n_hi)
    x_cap = np.full(bits.shape[0], math.log(n_hi))
    if constraints.weights_memory_max_bytes is not None:
        with np.errstate(divide="ignore"):  # a cap below one parameter's bits: log 0 = -inf, infeasible
            x_cap = np.minimum(x_cap, np.log(constraints.weights_memory_max_bytes * 8.0 / deployed))
    x_fixed = None if constraints.n_params is None else math.log(constraints.n_params)
    return _Problem(
        loss_fn=loss_fn,
        budget=budget,
        bits=bits,
        factor=factor,
        ptq=ptq,
        post_train_bits=post,
        x_lo=math.log(n_lo),
        x_hi=math.log(n_hi),
        x_cap=x_cap,
        d_max=math.inf if constraints.n_tokens_max is None else float(constraints.n_tokens_max),
        x_fixed=x_fixed,
    )


def _finalise(problem: _Problem, k: int, x: float) -> PlanConfig:
    """Round the configuration to integer N and D within the budget and evaluate it exactly."""
    n = float(round(math.exp(x))) if problem.x_fixed is None else float(round(math.exp(problem.x_fixed)))
    cap = math.exp(float(problem.x_cap[k]))
    n = max(1.0, min(n, math.floor(cap + 1e-6))) if problem.x_fixed is None else n
    factor = float(problem.factor[k])
    d = float(math.floor(min(problem.budget / (FLOPS_PER_PARAM_TOKEN * n * factor), problem.d_max)))
    wb, ab, kvb = (float(v) for v in problem.bits[k])
    ptq = bool(problem.ptq[k])
    post_arr = np.array([[problem.post_train_bits]], dtype=np.float64) if ptq else None
    one = np.ones((1, 1))
    loss = float(
        np.asarray(
            problem.loss_fn(one * n, one * d, one * wb, one * ab, one * kvb, post_arr), dtype=np.float64
        ).ravel()[0]
    )
    deployed = problem.post_train_bits if ptq and problem.post_train_bits is not None else wb
    return PlanConfig(
        n_params=int(n),
        n_tokens=int(d),
        tokens_per_param=d / n,
        weight_bits=wb,
        activation_bits=ab,
        kv_bits=kvb,
        post_train_bits=float(problem.post_train_bits) if ptq and problem.post_train_bits is not None else None,
        predicted_loss=loss,
        compute_flops=FLOPS_PER_PARAM_TOKEN * n * d * factor,
        weights_memory_bytes=n * deployed / 8.0,
    )


def _spread(
    problem: _Problem,
    draws: LossFn,
    x_best: FloatArray,
    loss_best: FloatArray,
    chosen: int,
    rec: PlanConfig,
) -> OptimumSpread:
    """Re-run the argmin per bootstrap draw on a window around the central optima (vectorised over draws)."""
    bits = problem.bits
    finite = np.flatnonzero(np.isfinite(loss_best))
    # Candidates: configurations within 1 bit of the chosen one on every axis, the best per matmul
    # precision max(weight, activation), and the SPREAD_TOP_CONFIGS best overall.
    near = finite[np.all(np.abs(bits[finite] - bits[chosen]) <= 1.0 + 1e-9, axis=1)]
    top = finite[np.argsort(loss_best[finite])[:SPREAD_TOP_CONFIGS]]
    p = np.maximum(bits[finite, 0], bits[finite, 1])
    per_precision = np.array(
        [finite[p == w][np.argmin(loss_best[finite][p == w])] for w in np.unique(p)], dtype=np.int64
    )
    top = np.union1d(top, per_precision)
    subset = np.union1d(near, top)
    sub = replace(
        problem,
        bits=bits[subset],
        factor=problem.factor[subset],
        ptq=problem.ptq[subset],
        x_cap=problem.x_cap[subset],
    )
    k = subset.size
    if problem.x_fixed is not None:
        x = np.full((k, 1), problem.x_fixed)
    else:
        half = SPREAD_HALF_WIDTH_DECADES * math.log(10.0)
        offsets = np.linspace(-half, half, SPREAD_POINTS)
        x = np.clip(x_best[subset, None] + offsets[None, :], problem.x_lo, sub.x_cap[:, None])
        x = np.where(sub.x_cap[:, None] < problem.x_lo, sub.x_cap[:, None], x)
    loss, d = _evaluate(sub, draws, x)  # (S, K, J)
    s = loss.shape[0]
    flat = loss.reshape(s, -1)
    idx = np.argmin(flat, axis=1)
    best_val = flat[np.arange(s), idx]
    valid = np.isfinite(best_val)
    kk, jj = np.unravel_index(idx, (k, x.shape[1]))
    x_opt = x[kk, jj].copy()
    at_edge = np.zeros(s, dtype=bool)
    if x.shape[1] >= 3:
        # Parabolic refinement in log N on each draw's grid.
        j = np.clip(jj, 1, x.shape[1] - 2)
        xa, xb, xc = x[kk, j - 1], x[kk, j], x[kk, j + 1]
        fa, fb, fc = loss[np.arange(s), kk, j - 1], loss[np.arange(s), kk, j], loss[np.arange(s), kk, j + 1]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            num = (xb - xa) ** 2 * (fb - fc) - (xb - xc) ** 2 * (fb - fa)
            den = (xb - xa) * (fb - fc) - (xb - xc) * (fb - fa)
            xv = xb - 0.5 * num / den
        ok = np.isfinite(xv) & (xv >= np.minimum(xa, xc)) & (xv <= np.maximum(xa, xc)) & (jj == j)
        x_opt = np.where(ok, xv, x_opt)
        window_edge = (jj == 0) | (jj == x.shape[1] - 1)
        search_edge = (np.abs(x_opt - problem.x_lo) < 1e-9) | (np.abs(x_opt - sub.x_cap[kk]) < 1e-9)
        at_edge = window_edge & ~search_edge
    n_opt = np.exp(x_opt)
    d_opt = np.minimum(problem.budget / (FLOPS_PER_PARAM_TOKEN * n_opt * sub.factor[kk]), problem.d_max)
    b = sub.bits[kk]
    # The recommended configuration's loss under each draw.
    ptq = rec.post_train_bits is not None
    one = np.ones((1, 1))
    rec_loss = np.asarray(
        draws(
            one * rec.n_params,
            one * rec.n_tokens,
            one * rec.weight_bits,
            one * rec.activation_bits,
            one * rec.kv_bits,
            one * rec.post_train_bits if ptq and rec.post_train_bits is not None else None,
        ),
        dtype=np.float64,
    ).reshape(s)

    def q(values: FloatArray, log: bool = False) -> tuple[float, float]:
        v = values[np.isfinite(values)]
        if v.size == 0:
            return (math.nan, math.nan)
        if log:
            lo, hi = np.percentile(np.log(v), [2.5, 97.5])
            return (float(np.exp(lo)), float(np.exp(hi)))
        lo, hi = np.percentile(v, [2.5, 97.5])
        return (float(lo), float(hi))

    return OptimumSpread(
        n_draws=s,
        n_valid_draws=int(valid.sum()),
        n_params=q(np.where(valid, n_opt, np.nan), log=True),
        n_tokens=q(np.where(valid, d_opt, np.nan), log=True),
        weight_bits=q(np.where(valid, b[:, 0], np.nan)),
        activation_bits=q(np.where(valid, b[:, 1], np.nan)),
        kv_bits=q(np.where(valid, b[:, 2], np.nan)),
        predicted_loss=q(rec_loss),
        fraction_at_window_edge=float(at_edge[valid].mean()) if valid.any() else 0.0,
    )


def plan_search(
    loss_fn: LossFn,
    budget_flops: float,
    *,
    cost_model: CostModel = "linear_bits",
    hardware: str | HardwareProfile | None = None,
    constraints: PlanConstraints | None = None,
    draws: LossFn | None = None,
    tie_bits: bool = False,
    max_alternatives: int = 5,
    reference_bits: tuple[float, float, float] | None = None,
) -> PlanResult:
    """The lowest-predicted-loss configuration (N, D, training bits) that the budget and constraints allow.

    `budget_flops` is in 16-bit-equivalent FLOPs (`budget_to_flops`). `tie_bits` forces
    weight = activation = KV bits (needed for fractional `bits_choices` sweeps; otherwise all
    combinations of the candidate widths are searched). `draws`, when given, yields
    `optimum_spread` and the recommendation's `predicted_loss_interval`. Raises `PlanningError`
    when no configuration is feasible and inside the law's domain.

    `reference_bits` (weight, activation, KV), when given, is the family's reference precision and turns on the
    meaningful-difference rule: the plan keeps each searched width at the reference (the fixed width where the
    constraints fix it; the widest candidate where the reference is not among the candidates) unless departing
    from it lowers the predicted loss by more than its uncertainty, i.e. unless the 95% interval of the paired
    gain over the bootstrap draws lies above zero (`_meaningful_bits`). Without draws the reference is kept.
    The decision is in `precision_choice`.
    """
    if not (math.isfinite(budget_flops) and budget_flops > 0):
        raise PlanningError(f"budget_flops must be finite and positive, got {budget_flops}")
    if budget_flops < MIN_BUDGET_FLOPS:
        raise PlanningError(f"budget_flops {budget_flops:g} is below {MIN_BUDGET_FLOPS:g}: no model size fits")
    constraints = constraints or PlanConstraints()
    profile = None
    warnings: list[str] = []
    if cost_model == "hardware":
        if hardware is None:
            warnings.append("hardware cost model without a hardware profile: assumed H100")
        profile = get_hardware(hardware if hardware is not None else "h100")
    elif hardware is not None:
        profile = get_hardware(hardware)
    bits, candidates = _bit_configurations(constraints, tie_bits)
    problem = _make_problem(loss_fn, budget_flops, bits, constraints, cost_model, profile)
    x_best, loss_best, n_eval = _search_configs(problem)
    if not np.isfinite(loss_best).any():
        raise PlanningError("no configuration satisfies the constraints inside the law's domain")
    chosen = int(np.argmin(loss_best))
    precision_choice = None
    if reference_bits is not None:
        chosen, precision_choice = _meaningful_bits(
            problem, draws, x_best, loss_best, chosen, _reference_config(bits, constraints, candidates, reference_bits)
        )
    rec = _finalise(problem, chosen, float(x_best[chosen]))

    # The 16-bit baseline: same constraints, bits fixed at 16, PTQ still applied.
    base_constraints = replace(
        constraints, weight_bits=BASE_BITS, activation_bits=BASE_BITS, kv_bits=BASE_BITS, bits_choices=None
    )
    base_problem = _make_problem(
        loss_fn, budget_flops, np.full((1, 3), BASE_BITS), base_constraints, cost_model, profile
    )
    bx, bl, b_eval = _search_configs(base_problem)
    n_eval += b_eval
    baseline = _finalise(base_problem, 0, float(bx[0])) if np.isfinite(bl[0]) else None

    # Alternatives: the best configuration per other matmul precision max(weight, activation).
    p = np.maximum(bits[:, 0], bits[:, 1])
    alts: list[tuple[float, int]] = []
    for width in np.unique(p):
        if width == p[chosen]:
            continue
        members = np.flatnonzero((p == width) & np.isfinite(loss_best))
        if members.size:
            m = int(members[np.argmin(loss_best[members])])
            alts.append((float(loss_best[m]), m))
    alts.sort()
    alternatives = tuple(_finalise(problem, m, float(x_best[m])) for _, m in alts[:max_alternatives])

    spread = None
    if draws is not None:
        spread = _spread(problem, draws, x_best, loss_best, chosen, rec)
        rec = replace(rec, predicted_loss_interval=spread.predicted_loss)

    bounds = _bound_flags(problem, constraints, rec, chosen, candidates, tie_bits)
    warnings.extend(_bound_warnings(bounds))
    if rec.compute_flops < 0.99 * budget_flops:
        warnings.append(
            f"the plan spends {rec.compute_flops / budget_flops:.0%} of the budget: N and tokens are both capped"
        )
    if spread is not None and spread.fraction_at_window_edge > 0.05:
        warnings.append(
            f"{spread.fraction_at_window_edge:.0%} of bootstrap optima lie at the edge of the per-draw "
            "search window: optimum_spread understates the n_params range"
        )
    if not math.isfinite(rec.predicted_loss):
        raise PlanningError("the recommended configuration falls outside the law's domain after rounding")
    return PlanResult(
        recommendation=rec,
        baseline=baseline,
        alternatives=alternatives,
        bounds=bounds,
        optimum_spread=spread,
        budget_flops=budget_flops,
        cost_model=cost_model,
        hardware=None if profile is None else profile.name,
        warnings=tuple(warnings),
        n_evaluations=n_eval,
        search_n_params_range=(math.exp(problem.x_lo), math.exp(problem.x_hi)),
        candidate_bits=candidates,
        precision_choice=precision_choice,
    )


BIT_NAMES = ("weight_bits", "activation_bits", "kv_bits")


def _reference_config(
    bits: FloatArray,
    constraints: PlanConstraints,
    candidates: tuple[float, ...],
    reference: tuple[float, float, float],
) -> int | None:
    """The row of `bits` holding the reference precision: each width fixed by the constraints stays, each searched
    one is the reference width when it is a candidate, else the widest candidate. None when no row matches
    (tied widths whose reference differs per dimension take the widest of them)."""
    fixed = (constraints.weight_bits, constraints.activation_bits, constraints.kv_bits)
    want = [
        f if f is not None else (r if r in candidates else max(candidates))
        for f, r in zip(fixed, reference, strict=True)
    ]
    rows = np.flatnonzero(np.all(bits == np.asarray(want), axis=1))
    if rows.size == 0 and np.all(bits[:, 0:1] == bits):  # tied: one width for all three
        width = max(w for w in want)
        rows = np.flatnonzero(bits[:, 0] == width)
    return int(rows[0]) if rows.size else None


def _config_draw_losses(problem: _Problem, draws: LossFn, config: PlanConfig) -> FloatArray:
    """The loss of one planned configuration (its N, D and widths) under every draw, shape (S,)."""
    one = np.ones((1, 1))
    post = one * config.post_train_bits if config.post_train_bits is not None else None
    out = draws(
        one * config.n_params,
        one * config.n_tokens,
        one * config.weight_bits,
        one * config.activation_bits,
        one * config.kv_bits,
        post,
    )
    return np.asarray(out, dtype=np.float64).reshape(-1)


def _gain(
    problem: _Problem, draws: LossFn | None, x_best: FloatArray, worse: int, better: int
) -> tuple[float, tuple[float, float] | None]:
    """Predicted loss of configuration `worse` minus that of `better` (each at its own best N, D), and the 95%
    range of that difference over the draws, paired draw by draw (None without draws)."""
    a, b = _finalise(problem, worse, float(x_best[worse])), _finalise(problem, better, float(x_best[better]))
    point = a.predicted_loss - b.predicted_loss
    if draws is None:
        return point, None
    diff = _config_draw_losses(problem, draws, a) - _config_draw_losses(problem, draws, b)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        return point, None
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return point, (float(lo), float(hi))


def _meaningful(interval: tuple[float, float] | None) -> bool:
    """A gain is meaningful when its 95% interval lies above zero."""
    return interval is not None and interval[0] > 0.0


def _widths(row: FloatArray) -> tuple[float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]))


def _meaningful_bits(
    problem: _Problem,
    draws: LossFn | None,
    x_best: FloatArray,
    loss_best: FloatArray,
    best: int,
    reference: int | None,
) -> tuple[int, PrecisionChoice | None]:
    """The meaningful-difference rule (plan_search): starting from the point best, put back at the reference width
    each dimension whose narrowing gains nothing meaningful (the cheapest to put back first), until every remaining
    departure gains meaningfully; then keep the result only if its whole gain over the reference is meaningful.
    Without draws the reference is kept. Returns the chosen row and the decision (None without a reference)."""
    if reference is None or not np.isfinite(loss_best[reference]):
        return best, None
    bits = problem.bits
    ref = bits[reference]

    def differing(a: int, b: int) -> list[str]:
        return [BIT_NAMES[d] for d in range(3) if bits[a][d] != bits[b][d]]

    best_gain, best_interval = _gain(problem, draws, x_best, reference, best)
    current = best if draws is not None else reference
    kept = [] if draws is not None else differing(best, reference)
    while draws is not None and current != reference:
        options = []
        for d in range(3):
            if bits[current][d] == ref[d]:
                continue
            want = bits[current].copy()
            want[d] = ref[d]
            rows = np.flatnonzero(np.all(bits == want, axis=1))
            back = int(rows[0]) if rows.size else reference  # tied widths: the only way back is the reference
            if not np.isfinite(loss_best[back]):
                continue
            cost, interval = _gain(problem, draws, x_best, back, current)
            if not _meaningful(interval):
                options.append((cost, back))
        if not options:
            break
        _, back = min(options)
        kept += differing(current, back)
        current = back
    gain, interval = _gain(problem, draws, x_best, reference, current)
    if current != reference and not _meaningful(interval):
        kept += differing(current, reference)
        current = reference
        gain, interval = 0.0, None
    if best == reference or (draws is not None and current == reference):
        decided = "reference"
    elif draws is None:
        decided = "no_draws"
    else:
        decided = "departure" if current == best else "partial"
    return current, PrecisionChoice(
        reference=_widths(ref),
        point_best=_widths(bits[best]),
        chosen=_widths(bits[current]),
        gain=gain,
        gain_interval=interval,
        point_best_gain=best_gain,
        point_best_gain_interval=best_interval,
        kept_reference=tuple(dict.fromkeys(kept)),
        n_draws=0 if draws is None else _n_draws(problem, draws, x_best, best),
        decided=decided,
    )


def _n_draws(problem: _Problem, draws: LossFn, x_best: FloatArray, row: int) -> int:
    """How many bootstrap draws a gain's interval is measured on (those with a finite loss)."""
    losses = _config_draw_losses(problem, draws, _finalise(problem, row, float(x_best[row])))
    return int(np.sum(np.isfinite(losses)))


def _bound_flags(
    problem: _Problem,
    constraints: PlanConstraints,
    rec: PlanConfig,
    chosen: int,
    candidates: tuple[float, ...],
    tie_bits: bool,
) -> BoundFlags:
    n = float(rec.n_params)
    rel = 1e-6
    searched_n = constraints.n_params is None
    cap_mem = constraints.weights_memory_max_bytes is not None and n * (
        rec.post_train_bits or rec.weight_bits
    ) / 8.0 >= constraints.weights_memory_max_bytes * (1 - 1e-6)
    cap_n = constraints.n_params_max is not None and n >= constraints.n_params_max * (1 - rel)
    n_hi = math.exp(problem.x_hi)
    at_max = searched_n and n >= n_hi * (1 - rel) and not cap_n and not cap_mem
    at_min = searched_n and n <= math.exp(problem.x_lo) * (1 + rel)
    fixed = {
        "weight_bits": constraints.weight_bits,
        "activation_bits": constraints.activation_bits,
        "kv_bits": constraints.kv_bits,
    }
    if tie_bits and any(v is not None for v in fixed.values()):
        fixed = dict.fromkeys(fixed, 1.0)
    lo, hi = min(candidates), max(candidates)
    at_min_bits: list[str] = []
    at_max_bits: list[str] = []
    if len(candidates) > 1:
        for name, value in zip(fixed, problem.bits[chosen], strict=True):
            if fixed[name] is not None:
                continue
            if value <= lo:
                at_min_bits.append(name)
            elif value >= hi and name != "kv_bits":
                # KV bits never enter the cost, so the widest KV width is the expected optimum, not a bound.
                at_max_bits.append(name)
    return BoundFlags(
        n_params_at_search_min=at_min,
        n_params_at_search_max=at_max,
        n_params_max_binding=cap_n,
        memory_cap_binding=cap_mem,
        n_tokens_max_binding=math.isfinite(problem.d_max) and rec.n_tokens >= problem.d_max - 1,
        bits_at_min=tuple(at_min_bits),
        bits_at_max=tuple(at_max_bits),
    )


def _bound_warnings(bounds: BoundFlags) -> list[str]:
    out = []
    if bounds.n_params_at_search_min:
        out.append("optimum on a search bound: n_params at the smallest size searched (over 1e5 tokens per parameter)")
    if bounds.n_params_at_search_max:
        out.append("optimum on a search bound: n_params at the largest size searched")
    for name in bounds.bits_at_min:
        out.append(f"optimum on a search bound: {name} at the smallest allowed width")
    for name in bounds.bits_at_max:
        out.append(f"optimum on a search bound: {name} at the largest allowed width")
    if bounds.n_tokens_max_binding:
        out.append("n_tokens_max binds: the plan trains a larger model than compute-optimal on all allowed tokens")
    return out
