"""The floating-point quantization-training law of Sun et al. 2025 ("Capybara", arXiv:2501.02423, ICML 2025).

    L(N, D, E, M) = E_0 + A/N^alpha + B/D^beta + (D^beta / N^alpha) / (gamma * (E + 0.5)^delta * (M + 0.5)^nu)

E and M are the run's exponent and mantissa bits (docs/laws.md section 10.2). Sun's law also carries
log2(B_s), B_s the block size of the scaling factor, in the numerator of the last term; runs do not report a
block size, so it is taken as constant within a family and absorbed: this law's `gamma` is Sun's
gamma / log2(B_s). The Chinchilla names A, B, E, alpha, beta stand for Sun's n, d, eps, alpha, beta (and the
irreducible loss keeps the name E, as in the other laws; exponent bits are `exponent_bits`).

The law has no post-training-quantization term. Without a stated format, a total width P is read as the
layout the law itself rates best at P bits: the integer split E + M + 1 = P (1 <= E <= 8) with the largest
(E + 0.5)^delta (M + 0.5)^nu, which with Sun's constants is E2M1, E4M3 and E8M7 at 4, 8 and 16 bits.

Fitting: the law is linear in (E_0, A, B, 1/gamma) given (alpha, beta, delta, nu), so the screen solves those
four exactly (non-negative least squares on relative residuals) over a grid of the nonlinear four, and the
best few starts are polished by L-BFGS-B on the same Huber-on-log-loss objective as the other laws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from fits.laws.base import BitRequest, BitsPanel, ConstraintRefused, PointFit, RunConfig, ScalingLaw
from fits.laws.fitting import (
    _EXPONENT,
    _LOG_AMP,
    _LOG_E,
    HUBER_DELTA,
    ModelFn,
    _bound_warnings,
    _data_range,
    _distinct,
    _polish,
    _rho,
    check_design,
    check_request,
    fit_metrics,
    project_nonnegative,
)
from fits.laws.observations import FitFailed, FloatArray, Observations
from runs.density import DensityConstants

# Sun et al. 2025, Table 2 (docs/laws.md section 10.2): n, alpha, d, beta, eps, gamma, delta, nu. Their gamma
# goes with log2(block size); SUN_TABLE2["gamma"] is theirs, this law's gamma is that over log2(B_s).
SUN_TABLE2: dict[str, float] = {
    "A": 69.2343,
    "alpha": 0.2368,
    "B": 68973.0621,
    "beta": 0.5162,
    "E": 1.9061,
    "gamma": 11334.5197,
    "delta": 3.1926,
    "nu": 2.9543,
}
MAX_EXPONENT_BITS = 8

_LOG_K = (-60.0, 30.0)  # log(1/gamma)
_SHAPE = (0.0, 10.0)  # delta, nu


def sun_params(block_size: float = 128.0) -> dict[str, float]:
    """Sun's Table 2 constants in this law's parameterisation, for a scaling block of `block_size` elements."""
    return {**SUN_TABLE2, "gamma": SUN_TABLE2["gamma"] / float(np.log2(block_size))}


def _get(params: Mapping[str, Any], name: str) -> Any:
    value = params[name]
    return value if isinstance(value, np.ndarray) else float(value)


def fp_layout(params: Mapping[str, Any], total_bits: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The (exponent, mantissa) bits the law rates best at `total_bits` = E + M + 1, broadcasting over params.

    Integer widths get the best integer split with 1 <= E <= 8 and M >= 0; other widths (and widths below
    2 bits) the continuous optimum E = delta*P/(delta + nu) - 0.5 (Sun et al., Eq. 9).
    """
    p = np.asarray(total_bits, dtype=np.float64)
    delta, nu = _get(params, "delta"), _get(params, "nu")
    shape = np.broadcast_shapes(np.shape(p), np.shape(delta), np.shape(nu))
    p_b = np.broadcast_to(p, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_cont = np.broadcast_to(delta / (delta + nu) * p - 0.5, shape)
    cand = np.arange(1.0, MAX_EXPONENT_BITS + 1.0).reshape((-1,) + (1,) * len(shape))
    mant = p_b[None, ...] - 1.0 - cand
    integral = (p_b == np.round(p_b)) & (p_b >= 2.0)
    valid = (mant >= 0) & integral[None, ...]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = delta * np.log(cand + 0.5) + nu * np.log(np.maximum(mant, 0.0) + 0.5)
    score = np.where(valid, score, -np.inf)
    pick = np.argmax(score, axis=0)[None, ...]
    best = np.take_along_axis(np.broadcast_to(cand, score.shape), pick, axis=0)[0]
    e = np.where(np.any(valid, axis=0), best, e_cont)
    return np.asarray(e, dtype=np.float64), np.asarray(p_b - 1.0 - e, dtype=np.float64)


def fp_loss(
    params: Mapping[str, Any],
    *,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    exponent_bits: npt.ArrayLike,
    mantissa_bits: npt.ArrayLike,
) -> FloatArray:
    """Sun et al.'s law, broadcasting over inputs and over parameter arrays; NaN where E + 0.5 or M + 0.5 <= 0."""
    n = np.asarray(n_params, dtype=np.float64)
    d = np.asarray(n_tokens, dtype=np.float64)
    e = np.asarray(exponent_bits, dtype=np.float64) + 0.5
    m = np.asarray(mantissa_bits, dtype=np.float64) + 0.5
    alpha, beta = _get(params, "alpha"), _get(params, "beta")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        interaction = (
            d**beta / n**alpha / (_get(params, "gamma") * e ** _get(params, "delta") * m ** _get(params, "nu"))
        )
        out = _get(params, "E") + _get(params, "A") * n**-alpha + _get(params, "B") * d**-beta + interaction
    return np.asarray(np.where((e > 0) & (m > 0), out, np.nan), dtype=np.float64)


@dataclass(frozen=True)
class FpSpec:
    """Which of the nonlinear parameters the data can identify: delta needs two exponent widths, nu two
    mantissa widths; otherwise they are held at Sun's Table 2 values."""

    tie: bool
    fit_delta: bool
    fit_nu: bool

    @property
    def theta_names(self) -> list[str]:
        names = ["E", "A", "B", "gamma", "alpha"] + ([] if self.tie else ["beta"])
        return names + (["delta"] if self.fit_delta else []) + (["nu"] if self.fit_nu else [])

    def bounds(self) -> list[tuple[float, float]]:
        out = [_LOG_E, _LOG_AMP, _LOG_AMP, _LOG_K, _EXPONENT] + ([] if self.tie else [_EXPONENT])
        return out + ([_SHAPE] if self.fit_delta else []) + ([_SHAPE] if self.fit_nu else [])

    def unpack(self, theta: FloatArray) -> tuple[float, ...]:
        """(log E, log A, log B, log 1/gamma, alpha, beta, delta, nu) from optimiser coordinates."""
        le, la, lb, lk, alpha = (float(x) for x in theta[:5])
        k = 5
        beta = alpha
        if not self.tie:
            beta, k = float(theta[5]), 6
        delta = SUN_TABLE2["delta"]
        if self.fit_delta:
            delta, k = float(theta[k]), k + 1
        nu = float(theta[k]) if self.fit_nu else SUN_TABLE2["nu"]
        return le, la, lb, lk, alpha, beta, delta, nu

    def natural(self, theta: FloatArray) -> dict[str, float]:
        le, la, lb, lk, alpha, beta, delta, nu = self.unpack(theta)
        out = {"E": np.exp(le), "A": np.exp(la), "B": np.exp(lb), "gamma": np.exp(-lk), "alpha": alpha, "beta": beta}
        if self.fit_delta:
            out["delta"] = delta
        if self.fit_nu:
            out["nu"] = nu
        return {k: float(v) for k, v in out.items()}

    def fixed(self) -> dict[str, float]:
        out = {}
        if not self.fit_delta:
            out["delta"] = SUN_TABLE2["delta"]
        if not self.fit_nu:
            out["nu"] = SUN_TABLE2["nu"]
        return out


@dataclass(frozen=True)
class _FpInputs:
    log_n: FloatArray
    log_d: FloatArray
    log_e: FloatArray  # log(E + 0.5)
    log_m: FloatArray  # log(M + 0.5)
    target: FloatArray  # log final loss


def _inputs(data: Observations) -> _FpInputs:
    return _FpInputs(
        log_n=np.log(data.n_params),
        log_d=np.log(data.n_tokens),
        log_e=np.log(data.exponent_bits + 0.5),
        log_m=np.log(data.mantissa_bits + 0.5),
        target=np.log(data.final_loss),
    )


def _model(spec: FpSpec, inp: _FpInputs) -> ModelFn:
    """log L and its Jacobian in optimiser coordinates, via log-sum-exp of the four log-terms."""

    def model(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        le, la, lb, lk, alpha, beta, delta, nu = spec.unpack(theta)
        terms = np.stack(
            [
                np.full_like(inp.log_n, le),
                la - alpha * inp.log_n,
                lb - beta * inp.log_d,
                lk + beta * inp.log_d - alpha * inp.log_n - delta * inp.log_e - nu * inp.log_m,
            ]
        )
        top = terms.max(axis=0)
        ex = np.exp(terms - top)
        total = ex.sum(axis=0)
        w = ex / total
        cols = [w[0], w[1], w[2], w[3], -inp.log_n * (w[1] + w[3])]
        d_beta = -inp.log_d * w[2] + inp.log_d * w[3]
        if spec.tie:
            cols[4] = cols[4] + d_beta
        else:
            cols.append(d_beta)
        if spec.fit_delta:
            cols.append(-inp.log_e * w[3])
        if spec.fit_nu:
            cols.append(-inp.log_m * w[3])
        return top + np.log(total), np.column_stack(cols)

    return model


def _screen(spec: FpSpec, inp: _FpInputs, objective: str, keep: int) -> list[FloatArray]:
    """Variable projection over a grid of (alpha, beta, delta, nu); keep the best few starts by objective."""
    exps = np.geomspace(0.05, 1.5, 14)
    shapes = np.array([0.5, 1.5, 3.0, 5.0])
    grids = [exps] + ([] if spec.tie else [exps])
    grids += [shapes if spec.fit_delta else np.array([SUN_TABLE2["delta"]])]
    grids += [shapes if spec.fit_nu else np.array([SUN_TABLE2["nu"]])]
    mesh = np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(grids), -1).T
    alpha = mesh[:, :1]
    beta = alpha if spec.tie else mesh[:, 1:2]
    delta, nu = mesh[:, -2:-1], mesh[:, -1:]
    inv_loss = np.exp(-inp.target)
    n = inp.log_n.shape[0]
    chunk = max(1, 2_000_000 // max(n, 1))  # bounded memory: (chunk x n) arrays, whatever the family's size
    coef = np.empty((mesh.shape[0], 4))
    values = np.empty(mesh.shape[0])
    for start in range(0, mesh.shape[0], chunk):
        rows = slice(start, start + chunk)
        coef[rows], values[rows] = _project_block(
            alpha[rows], beta[rows], delta[rows], nu[rows], inp, inv_loss, objective
        )
    values = np.where(np.isfinite(values), values, np.inf)
    lo = np.array([b[0] for b in spec.bounds()])
    hi = np.array([b[1] for b in spec.bounds()])
    starts = []
    for i in np.argsort(values, kind="stable")[:keep]:
        theta = [*np.log(coef[i]), float(alpha[i, 0])]
        if not spec.tie:
            theta.append(float(beta[i, 0]))
        if spec.fit_delta:
            theta.append(float(delta[i, 0]))
        if spec.fit_nu:
            theta.append(float(nu[i, 0]))
        starts.append(np.clip(np.array(theta), lo, hi))
    return starts


def _project_block(
    alpha: FloatArray,
    beta: FloatArray,
    delta: FloatArray,
    nu: FloatArray,
    inp: _FpInputs,
    inv_loss: FloatArray,
    objective: str,
) -> tuple[FloatArray, FloatArray]:
    """(E, A, B, 1/gamma) solved exactly for each candidate row, and the objective at that solution."""
    with np.errstate(over="ignore", under="ignore"):
        u = np.exp(-alpha * inp.log_n)
        v = np.exp(-beta * inp.log_d)
        x = np.exp(beta * inp.log_d - alpha * inp.log_n - delta * inp.log_e - nu * inp.log_m)
    # Scale every column to a maximum of 1 so the Gram matrices stay well conditioned, then undo it.
    cols = [np.ones_like(u), u, v, x]
    scales = [np.maximum(np.max(c, axis=1, keepdims=True), 1e-300) for c in cols]
    coef, _ = project_nonnegative([c / s for c, s in zip(cols, scales, strict=True)], inv_loss)
    coef = coef / np.column_stack([s[:, 0] for s in scales])
    coef = np.maximum(coef, [np.exp(_LOG_E[0]), 1e-8, 1e-8, 1e-20])  # log-space amplitudes need positive starts
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.log(coef[:, :1] + coef[:, 1:2] * u + coef[:, 2:3] * v + coef[:, 3:4] * x)
        values = np.sum(_rho(pred - inp.target[None, :], objective)[0], axis=1)
    return coef, values


def _groups(data: Observations) -> npt.NDArray[np.intp]:
    keys = np.column_stack([data.n_params, data.n_tokens, data.exponent_bits, data.mantissa_bits])
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.intp).reshape(-1)


# bf16's exponent and mantissa bits: the format of the fp law's 16-bit reference (capacity density).
BF16_FORMAT = (8.0, 7.0)
MIN_FORMAT_BITS = 2.0  # a sign bit and one more


class FloatingPointLaw(ScalingLaw):
    """Sun et al.'s floating-point law on the runs that report their format (exponent and mantissa bits).

    Its rules: one floating-point format for weights, activations and KV cache (tied widths of at least 2 bits,
    fixed through weight_bits only); no PTQ term; a recommended width comes with the law's best layout.
    """

    name = "fp"
    title = "Floating point (Sun et al.)"
    bit_dims = ("w",)
    range_fields = ("weight_bits", "exponent_bits", "mantissa_bits")
    density_reference_rank: ClassVar[int | None] = None
    keep_starts = 4

    def applies_to(self, data: Observations) -> bool:
        """Only runs that report their format can be fitted."""
        return bool(np.any(np.isfinite(data.exponent_bits)))

    def fit_point(self, data: Observations, *, objective: str, seed: int, tie_exponents: bool) -> PointFit:
        """The point fit, without a backtest (fits.laws.backtest runs it on the whole fit procedure)."""
        return self._fit_point(data, objective=objective, seed=seed, tie=tie_exponents)

    def _fit_point(self, data: Observations, *, objective: str, seed: int, tie: bool) -> PointFit:
        check_request(data, objective)
        warnings: list[str] = []
        known = np.isfinite(data.exponent_bits) & np.isfinite(data.mantissa_bits)
        if not np.any(known):
            raise FitFailed("no run reports its floating-point format (exponent_bits and mantissa_bits)")
        if not np.all(known):
            warnings.append(
                f"{int(np.sum(~known))} of {data.n_runs} runs without exponent_bits and mantissa_bits were not "
                "fitted (the fp law needs each run's format)"
            )
        if data.n_evals:
            warnings.append(f"{data.n_evals} PTQ evaluations ignored: the fp law has no PTQ term")
        data = data.subset(known).canonical()
        data = Observations(
            **{**data.__dict__, "eval_run": np.zeros(0, dtype=np.intp), "eval_post_bits": [], "eval_loss": []}
        )
        spec = FpSpec(tie=tie, fit_delta=_distinct(data.exponent_bits) > 1, fit_nu=_distinct(data.mantissa_bits) > 1)
        for fitted, name, bits in ((spec.fit_delta, "delta", "exponent"), (spec.fit_nu, "nu", "mantissa")):
            if not fitted:
                warnings.append(
                    f"{bits} bits never vary ({_distinct_list(data, bits)}): {name} held at Sun et al.'s "
                    f"{SUN_TABLE2[name]}"
                )
        check_design(data, n_free=len(spec.theta_names), tie=spec.tie, runs="runs with a floating-point format")
        inp = _inputs(data)
        model = _model(spec, inp)
        bounds = spec.bounds()
        ones = np.ones(data.n_runs)
        best_theta, best_value = None, np.inf
        for start in _screen(spec, inp, objective, keep=self.keep_starts):
            theta, value = _polish(model, start, bounds, inp.target, ones, objective)
            if value < best_value:
                best_theta, best_value = theta, value
        if best_theta is None or not np.isfinite(best_value):
            raise FitFailed("no start converged to a finite objective")
        warnings += _bound_warnings(spec.theta_names, best_theta, bounds)
        params = spec.natural(best_theta)
        no_evals = np.zeros(0, dtype=bool)
        point = PointFit(
            law=self.name,
            objective=objective,
            seed=seed,
            tie_exponents=tie,
            data=data,
            base_spec=spec,
            theta_base=best_theta,
            ptq=False,
            theta_ptq=np.zeros(0),
            eval_mask=no_evals,
            groups=_groups(data),
            params=params,
            fixed=spec.fixed(),
            draw_names=list(params),
            metrics={},
            backtest={},
            warnings=warnings,
            data_range={
                **_data_range(data, no_evals),
                "exponent_bits_min": float(data.exponent_bits.min()),
                "exponent_bits_max": float(data.exponent_bits.max()),
                "mantissa_bits_min": float(data.mantissa_bits.min()),
                "mantissa_bits_max": float(data.mantissa_bits.max()),
            },
            settings={
                "huber_delta": HUBER_DELTA,
                "tie_exponents": tie,
                "seed": seed,
                "starts_polished": self.keep_starts,
                "block_size": "absorbed into gamma (gamma = Sun's gamma / log2(block size))",
            },
        )
        metrics = fit_metrics(data.final_loss, self._residuals(point.params | point.fixed, data), n_runs=data.n_runs)
        return PointFit(**{**point.__dict__, "metrics": metrics, "warnings": warnings})

    def _residuals(self, params: Mapping[str, float], data: Observations) -> FloatArray:
        return np.asarray(np.log(self.predict(params, RunConfig.of_runs(data))) - np.log(data.final_loss))

    def refit(self, point: PointFit, run_weights: FloatArray, eval_weights: FloatArray) -> FloatArray:
        """One bootstrap draw: warm-started refit with case weights; natural-scale parameters in draw order."""
        spec: FpSpec = point.base_spec
        inp = _inputs(point.data)
        theta, _ = _polish(_model(spec, inp), point.theta_base, spec.bounds(), inp.target, run_weights, point.objective)
        params = spec.natural(theta)
        return np.array([params[name] for name in point.draw_names])

    def predict(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        """Loss at (N, D) and the format: `exponent_bits`/`mantissa_bits` when given, else the law's best
        layout for `weight_bits` (fp_layout). Activation and KV bits are not read; PTQ is refused."""
        if config.has_ptq:
            raise ValueError("the fp law has no PTQ term; omit post_train_bits")
        e, m = config.exponent_bits, config.mantissa_bits
        if e is None or m is None:
            e, m = fp_layout(params, config.weight_bits)
        out = fp_loss(params, n_params=config.n_params, n_tokens=config.n_tokens, exponent_bits=e, mantissa_bits=m)
        if config.post_train_bits is not None:  # keep the broadcast shape of an all-NaN post_train_bits
            out = out + 0.0 * np.asarray(config.post_train_bits, dtype=np.float64)
        return out

    def plan_bits(self, request: BitRequest, params: Mapping[str, Any], data_range: Mapping[str, float]) -> BitRequest:
        if request.post_train_bits is not None:
            raise ConstraintRefused(
                "post_train_bits", "The fp law has no PTQ term; plan a deployment width with law=precision."
            )
        for key in ("activation_bits", "kv_bits"):
            if getattr(request, key) is not None:
                raise ConstraintRefused(
                    key,
                    "The fp law trains weights, activations and KV cache in one floating-point format: "
                    "fix weight_bits only.",
                )
        choices = request.bits_choices
        if request.weight_bits is not None:
            if request.weight_bits < MIN_FORMAT_BITS:
                raise ConstraintRefused("weight_bits", "A floating-point format needs at least 2 bits.")
            choices = (float(request.weight_bits),)
        elif choices is not None and min(choices) < MIN_FORMAT_BITS:
            raise ConstraintRefused("bits_choices", "A floating-point format needs at least 2 bits.")
        return BitRequest(bits_choices=choices, tie_bits=True)

    def deployment_format(self, params: Mapping[str, Any], weight_bits: float) -> dict[str, float]:
        """The law's best layout of a width: whole bits for a whole width (E4M3); a fractional width gets the
        law's continuous optimum."""
        exponent, mantissa = fp_layout(params, weight_bits)
        return {
            key: int(value) if float(value).is_integer() else float(value)
            for key, value in (("exponent_bits", exponent), ("mantissa_bits", mantissa))
        }

    def suggestion_bit_configs(
        self,
        recommended: tuple[float, float, float],
        params: Mapping[str, Any],
        request: BitRequest,
        default_widths: tuple[float, ...],
    ) -> list[tuple[float, float, float]]:
        """One format for everything: tied widths, or only the plan's when the request fixes the width."""
        if request.weight_bits is not None:
            return [recommended]
        widths = request.bits_choices or default_widths
        return sorted({recommended, (16.0, 16.0, 16.0), *((float(b), float(b), float(b)) for b in widths)})

    def density_constants(self, params: Mapping[str, Any]) -> DensityConstants:
        """The interaction term also falls as N^-alpha: at bf16's format it is k D^beta with k = 1/(gamma E^delta
        M^nu), E and M shifted by 0.5."""
        e_bits, m_bits = BF16_FORMAT
        fmt = (e_bits + 0.5) ** float(params["delta"]) * (m_bits + 0.5) ** float(params["nu"])
        return replace(super().density_constants(params), k=1.0 / (float(params["gamma"]) * fmt))

    def bits_panel(self, varying: list[str]) -> BitsPanel:
        """One format per run: its curve is over the total width, at the law's best layout."""
        return BitsPanel(
            dims=tuple(d for d in varying if d == "w"),
            tie_activations=True,
            lines_note="fitted law at its best E/M split",
        )

    def effective_params_message(self, params: Mapping[str, Any]) -> str | None:
        return "The fp law has no N_eff: its precision term adds to the loss."


def _distinct_list(data: Observations, bits: str) -> str:
    values = np.unique(data.exponent_bits if bits == "exponent" else data.mantissa_bits)
    return ", ".join(f"{v:g}" for v in values)


__all__ = ["SUN_TABLE2", "FloatingPointLaw", "FpSpec", "fp_layout", "fp_loss", "sun_params"]
