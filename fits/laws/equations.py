"""Closed-form loss laws, vectorised with NumPy broadcasting (docs/laws.md sections 1, 4 and 5).

Chinchilla [Hoffmann et al. 2022, arXiv:2203.15556]:

    L(N, D) = E + A / N^alpha + B / D^beta

Precision, the unified law of Kumar et al. 2024 (arXiv:2411.04330, Eqs. 4, 9, 11), with the offsets n_x:

    N_eff = N * PROD_{x in w, a, kv} (1 - exp(-P_x/gamma_x + n_x))
    L     = E + A / N_eff^alpha + B / D^beta + delta_PTQ
    delta_PTQ = C_T * exp(-P_post/gamma_post + n_post) * D^gamma_D / N_eff^gamma_N
                * PROD_{x in w, a, kv} (1 - exp(-C_x * (P_x - P_post)))

N is non-embedding parameters, D training tokens (FLOPs = 6*N*D), losses in nats per token.
Domain: a configuration with a training factor <= 0 is outside the law (NaN); a PTQ evaluation needs
P_post <= P_x for every x (delta_PTQ = 0 at equality). A missing or non-positive gamma_x means the
dimension is held at factor 1 (it never varied in the fitted data); missing C_x are 1; missing n_x are 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from fits.laws.observations import FloatArray

DIMS: tuple[str, ...] = ("w", "a", "kv")

# Kumar et al. 2024, Table 2 (App. K), copied from docs/laws.md section 3.1. Kumar's PTQ offset b is n_post.
KUMAR_TABLE2: dict[str, float] = {
    "A": 4.299e3,
    "alpha": 0.4965,
    "B": 1.806e4,
    "beta": 0.4965,
    "E": 2.7648,
    "gamma_w": 2.6745,
    "n_w": 0.3037,
    "gamma_a": 2.2102,
    "n_a": 1.4072,
    "gamma_kv": 0.9578,
    "n_kv": 2.4185,
    "C_T": 0.0598,
    "gamma_D": 0.5068,
    "gamma_N": 0.3439,
    "gamma_post": 0.5907,
    "n_post": 1.1277,
}

ParamValue = float | FloatArray
ParamMap = Mapping[str, Any]


def _get(params: ParamMap, name: str, default: float | None = None) -> ParamValue:
    if name in params:
        value = params[name]
        return value if isinstance(value, np.ndarray) else float(value)
    if default is None:
        raise KeyError(f"parameter {name!r} is required")
    return default


def _factor_off(gamma: ParamValue | None) -> bool:
    return gamma is None or (not isinstance(gamma, np.ndarray) and gamma <= 0.0)


def precision_factors(params: ParamMap, bits: Mapping[str, npt.ArrayLike]) -> dict[str, FloatArray]:
    """Per-dimension training factors 1 - exp(-P_x/gamma_x + n_x); exactly 1 where a dimension is held fixed."""
    out: dict[str, FloatArray] = {}
    for dim in DIMS:
        p = np.asarray(bits[dim], dtype=np.float64)
        gamma = params.get(f"gamma_{dim}")
        gamma_value = None if gamma is None else _get(params, f"gamma_{dim}")
        if _factor_off(gamma_value):
            out[dim] = np.ones_like(p)
            continue
        assert gamma_value is not None
        n_off = _get(params, f"n_{dim}", 0.0)
        out[dim] = -np.expm1(n_off - p / gamma_value)
    return out


def effective_params_ratio(
    params: ParamMap,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
) -> FloatArray:
    """N_eff / N for the given training bits; NaN where a factor is not positive (outside the law)."""
    f = precision_factors(params, {"w": weight_bits, "a": activation_bits, "kv": kv_bits})
    ratio = f["w"] * f["a"] * f["kv"]
    inside = (f["w"] > 0) & (f["a"] > 0) & (f["kv"] > 0)
    return np.where(inside, ratio, np.nan)


def in_domain(
    params: ParamMap,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
) -> npt.NDArray[np.bool_]:
    """True where every training factor 1 - exp(-P_x/gamma_x + n_x) is positive."""
    return np.asarray(np.isfinite(effective_params_ratio(params, weight_bits, activation_bits, kv_bits)))


def chinchilla_loss(params: ParamMap, n_params: npt.ArrayLike, n_tokens: npt.ArrayLike) -> FloatArray:
    """E + A/N^alpha + B/D^beta, broadcasting over inputs and over parameter arrays."""
    n = np.asarray(n_params, dtype=np.float64)
    d = np.asarray(n_tokens, dtype=np.float64)
    alpha = _get(params, "alpha")
    beta = _get(params, "beta", None) if "beta" in params else alpha
    out = _get(params, "E") + _get(params, "A") * n ** (-alpha) + _get(params, "B") * d ** (-beta)
    return np.asarray(out, dtype=np.float64)


def ptq_delta(
    params: ParamMap,
    *,
    n_eff: FloatArray,
    n_tokens: npt.ArrayLike,
    bits: Mapping[str, npt.ArrayLike],
    post_train_bits: npt.ArrayLike,
) -> FloatArray:
    """delta_PTQ of Kumar's Eq. 9; 0 where P_post is NaN (no PTQ), NaN where some P_x < P_post."""
    p_post = np.asarray(post_train_bits, dtype=np.float64)
    d = np.asarray(n_tokens, dtype=np.float64)
    # 0-d starts, so scalar inputs give a scalar delta (a shape-(1,) start would turn every scalar into a vector).
    robust: FloatArray = np.ones(())
    valid: npt.NDArray[np.bool_] = np.ones((), dtype=bool)
    for dim in DIMS:
        gap = np.asarray(bits[dim], dtype=np.float64) - p_post
        c_x = _get(params, f"C_{dim}", 1.0)
        robust = robust * -np.expm1(-c_x * np.maximum(gap, 0.0))
        valid = valid & ~(gap < 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        delta = (
            _get(params, "C_T")
            * np.exp(-p_post / _get(params, "gamma_post") + _get(params, "n_post", 0.0))
            * d ** _get(params, "gamma_D")
            / n_eff ** _get(params, "gamma_N")
            * robust
        )
    delta = np.where(valid, delta, np.nan)
    return np.asarray(np.where(np.isnan(p_post), 0.0, delta), dtype=np.float64)


def precision_loss(
    params: ParamMap,
    *,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
    post_train_bits: npt.ArrayLike | None = None,
) -> FloatArray:
    """Kumar's unified law (Eq. 11): NaN outside the law's domain."""
    bits = {"w": weight_bits, "a": activation_bits, "kv": kv_bits}
    ratio = effective_params_ratio(params, weight_bits, activation_bits, kv_bits)
    n_eff = np.asarray(n_params, dtype=np.float64) * ratio
    with np.errstate(invalid="ignore"):
        base = chinchilla_loss(params, n_eff, n_tokens)
    if post_train_bits is None:
        return base
    p_post = np.asarray(post_train_bits, dtype=np.float64)
    if "C_T" not in params:
        if np.all(np.isnan(p_post)):
            return base + 0.0 * p_post
        raise ValueError("these parameters have no PTQ term (no evaluations were fitted); omit post_train_bits")
    return base + ptq_delta(params, n_eff=n_eff, n_tokens=n_tokens, bits=bits, post_train_bits=p_post)
