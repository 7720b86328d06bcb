"""Predictions from fitted parameters or from every bootstrap draw at once, with extrapolation distances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fits.laws.observations import FloatArray
from fits.laws.registry import get_law
from fits.laws.results import FitResult


def predict_loss(
    law: str,
    params: Mapping[str, Any],
    *,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
    post_train_bits: npt.ArrayLike | None = None,
    exponent_bits: npt.ArrayLike | None = None,
    mantissa_bits: npt.ArrayLike | None = None,
) -> FloatArray:
    """Loss predicted by `law` with `params` (fitted and fixed together), broadcasting over every input.

    NaN marks configurations outside the law's domain (a training factor <= 0, or P_post above a training
    precision). `post_train_bits` NaN means "no PTQ" for that element; the chinchilla law ignores all bits.
    Parameter values may themselves be arrays (for example one per draw) that broadcast against the inputs.
    `exponent_bits` and `mantissa_bits` (the floating-point format) are read by the fp law only, which
    otherwise takes its best layout for `weight_bits`.
    """
    fmt = (
        {}
        if exponent_bits is None or mantissa_bits is None
        else {"exponent_bits": exponent_bits, "mantissa_bits": mantissa_bits}
    )
    return get_law(law).predict(
        params,
        n_params=n_params,
        n_tokens=n_tokens,
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        kv_bits=kv_bits,
        post_train_bits=post_train_bits,
        **fmt,
    )


def draw_params(draws: FloatArray, draw_names: Sequence[str], fixed: Mapping[str, float], ndim: int) -> dict[str, Any]:
    """Parameter mapping whose fitted values are columns of `draws`, shaped (n_draws, 1, ..., 1) for broadcasting."""
    shape = (draws.shape[0],) + (1,) * ndim
    out: dict[str, Any] = dict(fixed)
    for j, name in enumerate(draw_names):
        out[name] = draws[:, j].reshape(shape)
    return out


def predict_loss_draws(
    law: str,
    draws: FloatArray,
    draw_names: Sequence[str],
    fixed: Mapping[str, float],
    *,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
    post_train_bits: npt.ArrayLike | None = None,
    exponent_bits: npt.ArrayLike | None = None,
    mantissa_bits: npt.ArrayLike | None = None,
) -> FloatArray:
    """predict_loss for every draw at once: shape (n_draws, *broadcast shape of the inputs)."""
    inputs = [n_params, n_tokens, weight_bits, activation_bits, kv_bits]
    inputs += [x for x in (post_train_bits, exponent_bits, mantissa_bits) if x is not None]
    ndim = len(np.broadcast_shapes(*(np.shape(x) for x in inputs)))
    params = draw_params(np.asarray(draws, dtype=np.float64), draw_names, fixed, ndim)
    out = predict_loss(
        law,
        params,
        n_params=n_params,
        n_tokens=n_tokens,
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        kv_bits=kv_bits,
        post_train_bits=post_train_bits,
        exponent_bits=exponent_bits,
        mantissa_bits=mantissa_bits,
    )
    shape = (np.shape(draws)[0],) + np.broadcast_shapes(*(np.shape(x) for x in inputs))
    return np.broadcast_to(out, shape).copy()


@dataclass(frozen=True)
class Prediction:
    """Point prediction, a bootstrap interval and how far the query lies outside the fitted data."""

    loss: FloatArray
    interval: tuple[FloatArray, FloatArray]
    extrapolation: dict[str, Any] = field(default_factory=dict)


def predict_with_interval(
    result: FitResult,
    *,
    n_params: npt.ArrayLike,
    n_tokens: npt.ArrayLike,
    weight_bits: npt.ArrayLike = 16.0,
    activation_bits: npt.ArrayLike = 16.0,
    kv_bits: npt.ArrayLike = 16.0,
    post_train_bits: npt.ArrayLike | None = None,
    exponent_bits: npt.ArrayLike | None = None,
    mantissa_bits: npt.ArrayLike | None = None,
    level: float = 0.95,
) -> Prediction:
    """Loss at the fit's parameters, percentile interval over its draws, and extrapolation distances.

    extrapolation: n_params_ratio and n_tokens_ratio (query / largest fitted value; > 1 is beyond the data),
    and bits_outside_observed, the names of bit inputs outside the fitted range anywhere in the query.
    """
    kwargs: dict[str, Any] = {
        "n_params": n_params,
        "n_tokens": n_tokens,
        "weight_bits": weight_bits,
        "activation_bits": activation_bits,
        "kv_bits": kv_bits,
        "post_train_bits": post_train_bits,
        "exponent_bits": exponent_bits,
        "mantissa_bits": mantissa_bits,
    }
    loss = predict_loss(result.law, result.all_params, **kwargs)
    draws = result.draws[np.all(np.isfinite(result.draws), axis=1)]
    if draws.shape[0] >= 2:
        per_draw = predict_loss_draws(result.law, draws, result.draw_names, result.fixed, **kwargs)
        tail = 100.0 * (1.0 - level) / 2.0
        with np.errstate(invalid="ignore"):
            lo = np.nanpercentile(per_draw, tail, axis=0) if np.any(np.isfinite(per_draw)) else loss * np.nan
            hi = np.nanpercentile(per_draw, 100.0 - tail, axis=0) if np.any(np.isfinite(per_draw)) else loss * np.nan
    else:
        lo = hi = np.full_like(loss, np.nan)
    return Prediction(
        loss=loss,
        interval=(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)),
        extrapolation=extrapolation(result, **kwargs),
    )


def extrapolation(result: FitResult, **inputs: Any) -> dict[str, Any]:
    """How far a query lies outside the fitted data (ratios > 1 extrapolate; listed bits are outside the range)."""
    rng = result.data_range
    out: dict[str, Any] = {
        "n_params_ratio": float(np.max(np.asarray(inputs["n_params"], dtype=np.float64)) / rng["n_params_max"]),
        "n_tokens_ratio": float(np.max(np.asarray(inputs["n_tokens"], dtype=np.float64)) / rng["n_tokens_max"]),
    }
    outside: list[str] = []
    if result.law != "chinchilla":
        for key in ("weight_bits", "activation_bits", "kv_bits", "post_train_bits", "exponent_bits", "mantissa_bits"):
            value = inputs.get(key)
            if value is None or f"{key}_min" not in rng:
                if key == "post_train_bits" and value is not None and np.any(np.isfinite(value)):
                    outside.append(key)
                continue
            arr = np.asarray(value, dtype=np.float64)
            arr = arr[np.isfinite(arr)]
            if arr.size and (arr.min() < rng[f"{key}_min"] or arr.max() > rng[f"{key}_max"]):
                outside.append(key)
    out["bits_outside_observed"] = outside
    return out
