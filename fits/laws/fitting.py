"""Fitting: variable-projection screening, L-BFGS-B polish and cluster bootstrap (docs/laws.md 9.8).

Objective: sum_i rho(log L_hat_i - log L_i), rho = Huber with delta = 1e-3 (Hoffmann, Epoch) or 0.5*r^2
("least_squares"). The base law is written in Epoch's log-sum-exp form, log L_hat = LSE(a - alpha*log N_eff,
b - beta*log D, e) with A = e^a, B = e^b, E = e^e. Stage 1 fits it on final losses; stage 2 fits the PTQ
term on evaluations, with residual log(L_eval) - log(L_final + delta_PTQ_hat), i.e. the measured
delta = L_eval - L_final on the log-loss scale.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.stats import qmc

from fits.laws.base import PointFit, RunConfig, ScalingLaw
from fits.laws.equations import DIMS, KUMAR_TABLE2, effective_params_ratio
from fits.laws.observations import FitFailed, FloatArray, Observations

HUBER_DELTA = 1e-3
OBJECTIVES = ("huber", "least_squares")
BoolArray = npt.NDArray[np.bool_]
ModelFn = Callable[[FloatArray], tuple[FloatArray, FloatArray]]

# Box bounds in the optimiser's coordinates. Log-space amplitudes keep A, B, E, C_T positive.
_LOG_AMP = (-20.0, 100.0)
_LOG_E = (np.log(1e-4), 5.0)
_EXPONENT = (0.005, 3.0)
_LOG_GAMMA = (np.log(0.05), np.log(50.0))
_LOG_SLACK = (np.log(1e-3), np.log(50.0))  # s_x = P_min/gamma_x - n_x > 0 keeps every fitted run in the domain
_LOG_CT = (-40.0, 40.0)
_PTQ_EXPONENT = (0.0, 3.0)
_LOG_GAMMA_POST = (np.log(0.05), np.log(20.0))


# ---------------------------------------------------------------------------------------------------------------
# Objective and optimiser


def _rho(r: FloatArray, objective: str) -> tuple[FloatArray, FloatArray]:
    """Per-point loss and its derivative with respect to the residual."""
    if objective == "least_squares":
        return 0.5 * r * r, r
    a = np.abs(r)
    quad = a <= HUBER_DELTA
    rho = np.where(quad, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    psi = np.where(quad, r, HUBER_DELTA * np.sign(r))
    return rho, psi


def huber_sum(residuals: FloatArray) -> float:
    """Summed Huber (delta = 1e-3) of log-loss residuals: the figure Epoch reports (1.0183e-3 on Chinchilla)."""
    return float(np.sum(_rho(residuals, "huber")[0]))


def _objective_scale(objective: str) -> float:
    # Scale the summed objective to order one so L-BFGS-B's tolerances mean the same for both objectives.
    return HUBER_DELTA if objective == "huber" else HUBER_DELTA**2


def _polish(
    model: ModelFn,
    theta0: FloatArray,
    bounds: Sequence[tuple[float, float]],
    target: FloatArray,
    weights: FloatArray,
    objective: str,
) -> tuple[FloatArray, float]:
    """L-BFGS-B with the analytic gradient J^T (w * psi), restarted from its own end (at most 3 runs) while the
    objective still falls: the Huber kink stalls it."""
    scale = _objective_scale(objective)

    def fun(theta: FloatArray) -> tuple[float, FloatArray]:
        pred, jac = model(theta)
        rho, psi = _rho(pred - target, objective)
        value = float(np.sum(weights * rho)) / scale
        if not np.isfinite(value):
            return 1e30, np.zeros_like(theta)
        return value, (jac.T @ (weights * psi)) / scale

    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    theta = np.clip(theta0, lo, hi)
    best_value = fun(theta)[0]
    for _ in range(3):
        res = minimize(
            fun,
            theta,
            jac=True,
            method="L-BFGS-B",
            bounds=list(bounds),
            options={"maxiter": 3000, "ftol": 1e-14, "gtol": 1e-11, "maxcor": 30},
        )
        x = np.asarray(res.x, dtype=np.float64)
        value = fun(x)[0]
        if not value < best_value - 1e-10 * max(1.0, abs(best_value)):
            if value <= best_value:
                theta, best_value = x, value
            break
        theta, best_value = x, value
    return theta, best_value * scale


def _bound_warnings(names: Sequence[str], theta: FloatArray, bounds: Sequence[tuple[float, float]]) -> list[str]:
    out = []
    for name, value, (lo, hi) in zip(names, theta, bounds, strict=True):
        tol = 1e-6 * (hi - lo)
        if value <= lo + tol:
            out.append(f"{name} ended on its lower bound ({_fmt_bound(name, lo)})")
        elif value >= hi - tol:
            out.append(f"{name} ended on its upper bound ({_fmt_bound(name, hi)})")
    return out


def _fmt_bound(name: str, value: float) -> str:
    return f"{np.exp(value):.4g}" if name in _LOG_NAMES else f"{value:.4g}"


_LOG_NAMES = {"A", "B", "E", "C_T", "gamma_w", "gamma_a", "gamma_kv", "gamma_post"}


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: the base law (Chinchilla, or Chinchilla with N replaced by N_eff)


@dataclass(frozen=True)
class DimSpec:
    """How one precision dimension enters the fit, decided from the data.

    mode: "off" (never varies: factor 1), "gamma" (two levels: gamma_x fitted, n_x held at Table 2),
    "free" (three or more levels: gamma_x and n_x fitted). p_ref is the smallest fitted bit width.
    """

    dim: str
    mode: Literal["off", "gamma", "free"]
    p_ref: float
    n_fixed: float


@dataclass(frozen=True)
class BaseSpec:
    tie: bool
    dims: tuple[DimSpec, ...]

    @property
    def theta_names(self) -> list[str]:
        names = ["E", "A", "B", "alpha"] + ([] if self.tie else ["beta"])
        for d in self.dims:
            if d.mode != "off":
                names.append(f"gamma_{d.dim}")
            if d.mode == "free":
                names.append(f"n_{d.dim}")
        return names

    def bounds(self) -> list[tuple[float, float]]:
        out = [_LOG_E, _LOG_AMP, _LOG_AMP, _EXPONENT] + ([] if self.tie else [_EXPONENT])
        for d in self.dims:
            if d.mode == "free":
                out += [_LOG_GAMMA, _LOG_SLACK]
            elif d.mode == "gamma":
                hi = _LOG_GAMMA[1]
                if d.n_fixed > -1e-3:  # keep P_min/gamma - n_fixed >= 1e-3 so every fitted run stays in the domain
                    hi = min(hi, float(np.log(d.p_ref / (d.n_fixed + 1e-3))))
                out.append((_LOG_GAMMA[0], hi))
        return out

    def natural(self, theta: FloatArray) -> dict[str, float]:
        """Optimiser coordinates -> parameters named as in docs/laws.md."""
        out = {"E": float(np.exp(theta[0])), "A": float(np.exp(theta[1])), "B": float(np.exp(theta[2]))}
        out["alpha"] = float(theta[3])
        out["beta"] = float(theta[3] if self.tie else theta[4])
        k = 4 if self.tie else 5
        for d in self.dims:
            if d.mode == "off":
                continue
            gamma = float(np.exp(theta[k]))
            out[f"gamma_{d.dim}"] = gamma
            if d.mode == "free":
                out[f"n_{d.dim}"] = d.p_ref / gamma - float(np.exp(theta[k + 1]))
                k += 2
            else:
                k += 1
        return out

    def fixed(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for d in self.dims:
            if d.mode == "off":
                out[f"gamma_{d.dim}"] = 0.0  # gamma_x <= 0 encodes factor 1 in equations.precision_factors
                out[f"n_{d.dim}"] = 0.0
            elif d.mode == "gamma":
                out[f"n_{d.dim}"] = d.n_fixed
        return out

    def theta_from_nonlinear(self, nl: FloatArray, linear: FloatArray) -> FloatArray:
        """Assemble optimiser coordinates from nonlinear coordinates and (E, A, B)."""
        amps = np.log(np.maximum(linear, 1e-300))
        amps[0] = np.clip(amps[0], *_LOG_E)
        amps[1:] = np.clip(amps[1:], *_LOG_AMP)
        return np.concatenate([amps, nl])


@dataclass(frozen=True)
class _BaseInputs:
    log_n: FloatArray
    log_d: FloatArray
    bits: dict[str, FloatArray]
    target: FloatArray  # log final loss


def _log_neff(spec: BaseSpec, nl: FloatArray, inp: _BaseInputs, with_jac: bool) -> tuple[FloatArray, list[FloatArray]]:
    """log N_eff for nonlinear coordinates nl = (alpha, [beta], per dim: log gamma, [log slack])."""
    k = 1 if spec.tie else 2
    log_neff = inp.log_n.copy()
    cols: list[FloatArray] = []
    for d in spec.dims:
        if d.mode == "off":
            continue
        p = inp.bits[d.dim]
        gamma = np.exp(nl[k])
        if d.mode == "free":
            slack = np.exp(nl[k + 1])
            z = (p - d.p_ref) / gamma + slack
            dz = [-(p - d.p_ref) / gamma, np.full_like(p, slack)]
            k += 2
        else:
            z = p / gamma - d.n_fixed
            dz = [-p / gamma]
            k += 1
        log_neff += np.log(-np.expm1(-z))
        if with_jac:
            dlogf = 1.0 / np.expm1(z)
            cols += [dlogf * c for c in dz]
    return log_neff, cols


def _base_model(spec: BaseSpec, inp: _BaseInputs) -> ModelFn:
    def model(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        e, a, b, alpha = theta[0], theta[1], theta[2], theta[3]
        beta = alpha if spec.tie else theta[4]
        log_neff, cols = _log_neff(spec, theta[3:], inp, with_jac=True)
        ta = a - alpha * log_neff
        tb = b - beta * inp.log_d
        m = np.maximum(np.maximum(ta, tb), e)
        ea, eb, ee = np.exp(ta - m), np.exp(tb - m), np.exp(e - m)
        s = ea + eb + ee
        pred = m + np.log(s)
        wa, wb, we = ea / s, eb / s, ee / s
        jac = np.empty((pred.shape[0], theta.shape[0]))
        jac[:, 0], jac[:, 1], jac[:, 2] = we, wa, wb
        if spec.tie:
            jac[:, 3] = -log_neff * wa - inp.log_d * wb
        else:
            jac[:, 3] = -log_neff * wa
            jac[:, 4] = -inp.log_d * wb
        first = 4 if spec.tie else 5
        for j, col in enumerate(cols):
            jac[:, first + j] = -alpha * wa * col
        return pred, jac

    return model


def _project_linear(u: FloatArray, v: FloatArray, inv_loss: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Non-negative (E, A, B) minimising sum ((E + A*U + B*V)/L - 1)^2 for each candidate row of U, V.

    u, v: (K, n) holding N_eff^-alpha and D^-beta; inv_loss: (n,). Returns coefficients (K, 3) and the
    weighted SSE (K,), up to a constant.
    """
    return project_nonnegative([np.broadcast_to(np.ones_like(inv_loss), u.shape), u, v], inv_loss)


def project_nonnegative(cols: Sequence[FloatArray], inv_loss: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Non-negative coefficients c minimising sum ((SUM_j c_j * col_j)/L - 1)^2, for each of K candidates.

    cols: p arrays of shape (K, n), one per linear coefficient; inv_loss: (n,). Exact NNLS for a handful of
    unknowns by enumerating the 2^p - 1 active sets (largest first). Returns coefficients (K, p) and the
    weighted SSE (K,) up to the constant n; a candidate with no admissible set keeps zeros and SSE inf.
    """
    p = len(cols)
    k = cols[0].shape[0]
    w2 = inv_loss * inv_loss
    gram = np.empty((k, p, p))
    rhs = np.empty((k, p))
    for i in range(p):
        rhs[:, i] = (cols[i] * inv_loss).sum(axis=1)
        for j in range(i, p):
            gram[:, i, j] = gram[:, j, i] = (cols[i] * cols[j] * w2).sum(axis=1)
    best = np.full(k, np.inf)
    coef = np.zeros((k, p))
    subsets = [c for size in range(p, 0, -1) for c in itertools.combinations(range(p), size)]
    for subset in subsets:
        idx = np.array(subset)
        g = gram[:, idx[:, None], idx[None, :]] + 1e-300 * np.eye(len(subset))
        with np.errstate(all="ignore"):
            try:
                c = np.linalg.solve(g, rhs[:, idx][..., None])[..., 0]
            except np.linalg.LinAlgError:
                c = np.stack([np.linalg.lstsq(gi, ri, rcond=None)[0] for gi, ri in zip(g, rhs[:, idx], strict=True)])
            # SSE up to the constant n: c^T G c - 2 c^T r
            sse = np.einsum("ki,kij,kj->k", c, g, c) - 2.0 * np.einsum("ki,ki->k", c, rhs[:, idx])
        ok = np.all(c >= 0, axis=1) & np.isfinite(sse) & (sse < best)
        best = np.where(ok, sse, best)
        full = np.zeros((k, p))
        full[:, idx] = c
        coef = np.where(ok[:, None], full, coef)
    return coef, best


def _base_candidates(spec: BaseSpec, seed: int) -> FloatArray:
    """Nonlinear starting points: a dense exponent grid, plus Sobol points when precision terms are fitted."""
    grid = np.geomspace(0.02, 2.5, 48)
    if not any(d.mode != "off" for d in spec.dims):
        if spec.tie:
            return np.geomspace(0.02, 2.5, 400)[:, None]
        aa, bb = np.meshgrid(grid, grid, indexing="ij")
        return np.column_stack([aa.ravel(), bb.ravel()])
    # Precision: the exponent grid with every dimension at Kumar's Table 2 values, plus Sobol points.
    coarse = np.geomspace(0.05, 1.5, 10)
    exps = coarse[:, None] if spec.tie else np.array(np.meshgrid(coarse, coarse, indexing="ij")).reshape(2, -1).T
    table: list[float] = []
    lo_hi: list[tuple[float, float]] = []
    for d in spec.dims:
        if d.mode == "off":
            continue
        gamma = KUMAR_TABLE2[f"gamma_{d.dim}"]
        if d.mode == "free":
            slack = max(d.p_ref / gamma - KUMAR_TABLE2[f"n_{d.dim}"], 0.05)
            table += [np.log(gamma), np.log(slack)]
            lo_hi += [(np.log(0.3), np.log(8.0)), (np.log(0.02), np.log(5.0))]
        else:
            table.append(min(np.log(gamma), np.log(d.p_ref / (d.n_fixed + 1e-3)) if d.n_fixed > -1e-3 else 9.0))
            lo_hi.append((np.log(0.3), np.log(8.0)))
    structured = np.column_stack([exps, np.tile(table, (exps.shape[0], 1))])
    n_exp = 1 if spec.tie else 2
    dim = n_exp + len(lo_hi)
    sobol = qmc.Sobol(d=dim, scramble=True, seed=np.random.default_rng([seed, 7])).random(512)
    lows = np.array([np.log(0.05)] * n_exp + [lh[0] for lh in lo_hi])
    highs = np.array([np.log(1.5)] * n_exp + [lh[1] for lh in lo_hi])
    pts = lows + sobol * (highs - lows)
    pts[:, :n_exp] = np.exp(pts[:, :n_exp])
    bounds = spec.bounds()[3:]
    cands = np.vstack([structured, pts])
    return np.asarray(np.clip(cands, [b[0] for b in bounds], [b[1] for b in bounds]), dtype=np.float64)


def _screen_base(spec: BaseSpec, inp: _BaseInputs, seed: int, objective: str, keep: int) -> list[FloatArray]:
    """Variable projection: (E, A, B) solved exactly for each nonlinear start; keep the best few by objective."""
    cands = _base_candidates(spec, seed)
    loss = np.exp(inp.target)
    inv_loss = 1.0 / loss
    n = inp.log_n.shape[0]
    chunk = max(1, int(2_000_000 // max(n, 1)))
    values = np.empty(cands.shape[0])
    thetas = np.empty((cands.shape[0], len(spec.theta_names)))
    for start in range(0, cands.shape[0], chunk):
        block = cands[start : start + chunk]
        log_neff = np.stack([_log_neff(spec, nl, inp, with_jac=False)[0] for nl in block])
        alpha = block[:, :1]
        beta = alpha if spec.tie else block[:, 1:2]
        u = np.exp(-alpha * log_neff)
        v = np.exp(-beta * inp.log_d[None, :])
        coef, _ = _project_linear(u, v, inv_loss)
        coef = np.maximum(coef, [1e-4, 1e-8, 1e-8])  # log-space amplitudes need positive starts
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = np.log(coef[:, :1] + coef[:, 1:2] * u + coef[:, 2:3] * v)
            values[start : start + chunk] = np.sum(_rho(pred - inp.target[None, :], objective)[0], axis=1)
        for i, nl in enumerate(block):
            thetas[start + i] = spec.theta_from_nonlinear(nl, coef[i].copy())
    values = np.where(np.isfinite(values), values, np.inf)
    order = np.argsort(values, kind="stable")
    return [thetas[i] for i in order[:keep]]


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: the PTQ term


PTQ_NAMES = ["C_T", "gamma_D", "gamma_N", "gamma_post"]
PTQ_BOUNDS = [_LOG_CT, _PTQ_EXPONENT, _PTQ_EXPONENT, _LOG_GAMMA_POST]


@dataclass(frozen=True)
class _PtqInputs:
    log_d: FloatArray
    log_neff: FloatArray
    post_bits: FloatArray
    log_robust: FloatArray  # log PROD_x (1 - exp(-C_x (P_x - P_post))), C_x = 1; -inf where P_post = P_x
    base_loss: FloatArray  # measured final loss of the evaluated run
    target: FloatArray  # log loss after PTQ


def _ptq_model(inp: _PtqInputs) -> ModelFn:
    def model(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        c, g_d, g_n, lgp = theta
        gp = np.exp(lgp)
        log_delta = c - inp.post_bits / gp + g_d * inp.log_d - g_n * inp.log_neff + inp.log_robust
        delta = np.exp(np.minimum(log_delta, 50.0))
        total = inp.base_loss + delta
        share = delta / total
        jac = np.column_stack([share, share * inp.log_d, -share * inp.log_neff, share * inp.post_bits / gp])
        return np.log(total), jac

    return model


def _screen_ptq(inp: _PtqInputs, objective: str, keep: int) -> list[FloatArray]:
    g_ds = np.linspace(0.0, 1.5, 7)
    g_ns = np.linspace(0.0, 1.5, 7)
    gps = np.geomspace(0.1, 5.0, 10)
    grid = np.array(np.meshgrid(g_ds, g_ns, np.log(gps), indexing="ij")).reshape(3, -1).T
    y = np.exp(inp.target)
    delta_obs = y - inp.base_loss
    w2 = 1.0 / (y * y)
    with np.errstate(over="ignore", invalid="ignore"):
        log_basis = (
            -inp.post_bits[None, :] / np.exp(grid[:, 2:3])
            + grid[:, :1] * inp.log_d[None, :]
            - grid[:, 1:2] * inp.log_neff[None, :]
            + inp.log_robust[None, :]
        )
        shift = np.max(np.where(np.isfinite(log_basis), log_basis, -np.inf), axis=1, keepdims=True)
        basis = np.exp(log_basis - shift)
        c = np.sum(w2 * basis * delta_obs, axis=1) / np.sum(w2 * basis * basis, axis=1)
        c = np.maximum(np.nan_to_num(c, nan=1e-12), 1e-12)
        pred = np.log(inp.base_loss[None, :] + c[:, None] * basis)
        values = np.sum(_rho(pred - inp.target[None, :], objective)[0], axis=1)
    log_ct = np.clip(np.log(c) - shift[:, 0], *_LOG_CT)
    thetas = np.column_stack([log_ct, grid])
    values = np.where(np.isfinite(values), values, np.inf)
    order = np.argsort(values, kind="stable")
    return [thetas[i] for i in order[:keep]]


# ---------------------------------------------------------------------------------------------------------------
# Point fit, bootstrap, assembly


def _distinct(x: FloatArray) -> int:
    return int(np.unique(x).shape[0])


def check_request(data: Observations, objective: str) -> None:
    """ValueError for an unknown objective; FitFailed when there is nothing to fit. Every law's fit starts here."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    if data.n_runs == 0:
        raise FitFailed("no runs to fit")


def check_design(data: Observations, *, n_free: int, tie: bool, runs: str) -> None:
    """FitFailed unless there are n_free + 2 runs and enough distinct N and D (2 with tied exponents, else 3)."""
    need = 2 if tie else 3
    if data.n_runs < n_free + 2:
        raise FitFailed(
            f"too few points: {data.n_runs} {runs} for {n_free} free parameters (need at least {n_free + 2})"
        )
    if _distinct(data.n_params) < need:
        raise FitFailed(f"no spread in N: {_distinct(data.n_params)} distinct model sizes (need at least {need})")
    if _distinct(data.n_tokens) < need:
        raise FitFailed(f"no spread in D: {_distinct(data.n_tokens)} distinct token counts (need at least {need})")


def fit_metrics(observed: FloatArray, residuals: FloatArray, *, n_runs: int) -> dict[str, float]:
    """In-sample metrics from observed losses and their log residuals log L_hat - log L."""
    pred = observed * np.exp(residuals)
    ss_res = float(np.sum((observed - pred) ** 2))
    ss_tot = float(np.sum((observed - observed.mean()) ** 2))
    return {
        "n_runs": float(n_runs),
        "n_points": float(residuals.shape[0]),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rmse_log": float(np.sqrt(np.mean(residuals * residuals))),
        "huber_objective": huber_sum(residuals),
    }


def _configuration_groups(data: Observations) -> npt.NDArray[np.intp]:
    keys = np.column_stack([data.n_params, data.n_tokens, data.weight_bits, data.activation_bits, data.kv_bits])
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.intp).reshape(-1)


def _base_inputs(data: Observations) -> _BaseInputs:
    return _BaseInputs(
        log_n=np.log(data.n_params),
        log_d=np.log(data.n_tokens),
        bits={d: data.bits(d) for d in DIMS},
        target=np.log(data.final_loss),
    )


def _ptq_inputs(data: Observations, spec: BaseSpec, theta_base: FloatArray, mask: BoolArray) -> _PtqInputs:
    runs = data.eval_run[mask]
    base = _base_inputs(data)
    log_neff, _ = _log_neff(spec, theta_base[3:], base, with_jac=False)
    post = data.eval_post_bits[mask]
    with np.errstate(divide="ignore"):
        log_robust = sum((np.log(-np.expm1(-(data.bits(d)[runs] - post))) for d in DIMS), start=np.zeros(post.shape[0]))
    return _PtqInputs(
        log_d=base.log_d[runs],
        log_neff=log_neff[runs],
        post_bits=post,
        log_robust=log_robust,
        base_loss=data.final_loss[runs],
        target=np.log(data.eval_loss[mask]),
    )


class EffectiveParamsLaw(ScalingLaw):
    """The fitting engine of Chinchilla with N replaced by N_eff over `bit_dims`, plus Kumar's PTQ term when
    `models_ptq`: the chinchilla and precision laws (fits.laws.chinchilla, fits.laws.precision) are two settings
    of it."""

    keep_starts = 3

    # -- identifiability and domain, decided from the data before fitting --------------------------------------

    def _screen_domain(self, data: Observations) -> tuple[BoolArray, list[str]]:
        if not self.bit_dims:
            return np.ones(data.n_runs, dtype=bool), []
        # Only dimensions that vary are screened: a constant one is held at factor 1, so no domain question arises.
        varying = {d: _distinct(data.bits(d)) > 1 for d in DIMS}
        table = {k: KUMAR_TABLE2[k] for d in DIMS if varying[d] for k in (f"gamma_{d}", f"n_{d}")}
        inside = np.isfinite(effective_params_ratio(table, **_bits_kwargs(data)))
        warnings = []
        if not np.all(inside):
            worst = sorted({f"{_fmt(w)}/{_fmt(a)}/{_fmt(k)}" for w, a, k in _bit_rows(data, ~inside)})
            warnings.append(
                f"{int(np.sum(~inside))} runs outside the law's domain (a factor 1 - exp(-P_x/gamma_x + n_x) <= 0 "
                f"with Kumar's Table 2 constants; such runs diverge) were not fitted: W/A/KV bits {', '.join(worst)}"
            )
        return inside, warnings

    def _base_spec(self, data: Observations, tie: bool) -> tuple[BaseSpec, list[str]]:
        specs = []
        notes = []
        for d in DIMS:
            levels = np.unique(data.bits(d))
            if d not in self.bit_dims or levels.shape[0] == 1:
                if d in self.bit_dims:
                    notes.append(f"{_DIM_LABEL[d]} bits never vary ({_fmt(levels[0])}): factor held at 1")
                specs.append(DimSpec(d, "off", float(levels[0]), 0.0))
            elif levels.shape[0] == 2:
                n_fixed = KUMAR_TABLE2[f"n_{d}"]
                notes.append(f"{_DIM_LABEL[d]} bits take two values: gamma_{d} fitted, n_{d} held at Kumar's {n_fixed}")
                specs.append(DimSpec(d, "gamma", float(levels[0]), n_fixed))
            else:
                specs.append(DimSpec(d, "free", float(levels[0]), 0.0))
        return BaseSpec(tie=tie, dims=tuple(specs)), notes

    def _check_base(self, data: Observations, spec: BaseSpec) -> None:
        check_design(data, n_free=len(spec.theta_names), tie=spec.tie, runs="runs")

    def _ptq_plan(self, data: Observations) -> tuple[bool, BoolArray, list[str]]:
        if not self.models_ptq or data.n_evals == 0:
            return False, np.zeros(data.n_evals, dtype=bool), []
        post = data.eval_post_bits
        runs = data.eval_run
        inside = np.ones(data.n_evals, dtype=bool)
        for d in DIMS:
            inside &= post <= data.bits(d)[runs]
        inside &= post < data.weight_bits[runs]
        notes = []
        if not np.all(inside):
            notes.append(
                f"{int(np.sum(~inside))} evaluations outside the PTQ law's domain (post-train bits above a "
                "training precision, or equal to the weight bits) were not fitted"
            )
        m = inside
        reasons = []
        if int(m.sum()) < len(PTQ_NAMES) + 2:
            reasons.append(f"{int(m.sum())} usable evaluations (need at least {len(PTQ_NAMES) + 2})")
        else:
            if _distinct(post[m]) < 2:
                reasons.append("a single post-train bit width")
            if _distinct(data.n_tokens[runs[m]]) < 2:
                reasons.append("a single D among evaluated runs")
            if _distinct(data.n_params[runs[m]]) < 2:
                reasons.append("a single N among evaluated runs")
        if reasons:
            notes.append("PTQ term not fitted: " + "; ".join(reasons))
            return False, np.zeros(data.n_evals, dtype=bool), notes
        return True, m, notes

    # -- fitting --------------------------------------------------------------------------------------------------

    def fit_point(self, data: Observations, *, objective: str, seed: int, tie_exponents: bool) -> PointFit:
        """The point fit, without a backtest (fits.laws.backtest runs it on the whole fit procedure)."""
        return self._fit_point(data, objective=objective, seed=seed, tie=tie_exponents)

    def _fit_point(self, data: Observations, *, objective: str, seed: int, tie: bool) -> PointFit:
        check_request(data, objective)
        warnings: list[str] = []
        if not self.models_ptq and data.n_evals:
            warnings.append(f"{data.n_evals} PTQ evaluations ignored: the {self.name} law has no PTQ term")
        inside, notes = self._screen_domain(data)
        warnings += notes
        if not np.any(inside):
            raise FitFailed(f"all {data.n_runs} runs lie outside the law's domain")
        data = data.subset(inside).canonical()
        spec, notes = self._base_spec(data, tie)
        warnings += notes
        self._check_base(data, spec)
        inp = _base_inputs(data)
        model = _base_model(spec, inp)
        bounds = spec.bounds()
        ones = np.ones(data.n_runs)
        best_theta, best_value = None, np.inf
        for start in _screen_base(spec, inp, seed, objective, keep=self.keep_starts):
            theta, value = _polish(model, start, bounds, inp.target, ones, objective)
            if value < best_value:
                best_theta, best_value = theta, value
        if best_theta is None or not np.isfinite(best_value):
            raise FitFailed("no start converged to a finite objective")
        warnings += _bound_warnings(spec.theta_names, best_theta, bounds)
        params = spec.natural(best_theta)
        fixed = spec.fixed()
        draw_names = list(params)

        ptq, eval_mask, notes = self._ptq_plan(data)
        warnings += notes
        theta_ptq = np.zeros(0)
        if ptq:
            pin = _ptq_inputs(data, spec, best_theta, eval_mask)
            pmodel = _ptq_model(pin)
            pw = np.ones(pin.target.shape[0])
            best_p, best_pv = None, np.inf
            for start in _screen_ptq(pin, objective, keep=3):
                theta, value = _polish(pmodel, start, PTQ_BOUNDS, pin.target, pw, objective)
                if value < best_pv:
                    best_p, best_pv = theta, value
            if best_p is None or not np.isfinite(best_pv):
                raise FitFailed("the PTQ stage did not converge to a finite objective")
            theta_ptq = best_p
            warnings += _bound_warnings(PTQ_NAMES, theta_ptq, PTQ_BOUNDS)
            params.update(_ptq_natural(theta_ptq))
            draw_names += PTQ_NAMES
            fixed.update({"C_w": 1.0, "C_a": 1.0, "C_kv": 1.0, "n_post": 0.0})

        point = PointFit(
            law=self.name,
            objective=objective,
            seed=seed,
            tie_exponents=tie,
            data=data,
            base_spec=spec,
            theta_base=best_theta,
            ptq=ptq,
            theta_ptq=theta_ptq,
            eval_mask=eval_mask,
            groups=_configuration_groups(data),
            params=params,
            fixed=fixed,
            draw_names=draw_names,
            metrics={},
            backtest={},
            warnings=warnings,
            data_range=_data_range(data, eval_mask),
            settings={
                "huber_delta": HUBER_DELTA,
                "tie_exponents": tie,
                "seed": seed,
                "starts_polished": self.keep_starts,
                "n_post_and_C_x": "held at 0 and 1 (C_T absorbs n_post)" if ptq else "not used",
            },
        )
        metrics = self._metrics(point)
        return PointFit(**{**point.__dict__, "metrics": metrics, "warnings": warnings})

    def _residuals(self, point: PointFit, params: Mapping[str, float], data: Observations) -> FloatArray:
        everything = {**point.fixed, **params}
        res = [np.log(self.predict(everything, RunConfig.of_runs(data))) - np.log(data.final_loss)]
        if point.ptq:
            m = point.eval_mask if data is point.data else np.ones(data.n_evals, dtype=bool)
            predicted = self.predict(everything, RunConfig.of_evaluations(data, m))
            res.append(np.log(predicted) - np.log(data.eval_loss[m]))
        return np.concatenate(res)

    def _metrics(self, point: PointFit) -> dict[str, float]:
        data = point.data
        r = self._residuals(point, point.params, data)
        observed = np.concatenate([data.final_loss] + ([data.eval_loss[point.eval_mask]] if point.ptq else []))
        return fit_metrics(observed, r, n_runs=data.n_runs)

    def refit(self, point: PointFit, run_weights: FloatArray, eval_weights: FloatArray) -> FloatArray:
        """One bootstrap draw: warm-started refit with case weights; natural-scale parameters in draw order."""
        data = point.data
        spec = point.base_spec
        inp = _base_inputs(data)
        theta, _ = _polish(
            _base_model(spec, inp), point.theta_base, spec.bounds(), inp.target, run_weights, point.objective
        )
        params = spec.natural(theta)
        if point.ptq:
            pin = _ptq_inputs(data, spec, theta, point.eval_mask)
            tp, _ = _polish(
                _ptq_model(pin), point.theta_ptq, PTQ_BOUNDS, pin.target, eval_weights[point.eval_mask], point.objective
            )
            params.update(_ptq_natural(tp))
        return np.array([params[name] for name in point.draw_names])


def _ptq_natural(theta: FloatArray) -> dict[str, float]:
    return {
        "C_T": float(np.exp(theta[0])),
        "gamma_D": float(theta[1]),
        "gamma_N": float(theta[2]),
        "gamma_post": float(np.exp(theta[3])),
    }


_DIM_LABEL = {"w": "weight", "a": "activation", "kv": "KV-cache"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _bits_kwargs(data: Observations) -> dict[str, FloatArray]:
    return {"weight_bits": data.weight_bits, "activation_bits": data.activation_bits, "kv_bits": data.kv_bits}


def _bit_rows(data: Observations, mask: BoolArray) -> list[tuple[float, float, float]]:
    return [
        (float(w), float(a), float(k))
        for w, a, k in zip(data.weight_bits[mask], data.activation_bits[mask], data.kv_bits[mask], strict=True)
    ]


def _data_range(data: Observations, eval_mask: BoolArray) -> dict[str, float]:
    out = {
        "n_params_max": float(data.n_params.max()),
        "n_tokens_max": float(data.n_tokens.max()),
        "n_params_min": float(data.n_params.min()),
        "n_tokens_min": float(data.n_tokens.min()),
    }
    for d, key in (("w", "weight_bits"), ("a", "activation_bits"), ("kv", "kv_bits")):
        out[f"{key}_min"] = float(data.bits(d).min())
        out[f"{key}_max"] = float(data.bits(d).max())
    if np.any(eval_mask):
        out["post_train_bits_min"] = float(data.eval_post_bits[eval_mask].min())
        out["post_train_bits_max"] = float(data.eval_post_bits[eval_mask].max())
    return out
