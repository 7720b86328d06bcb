"""Predictions from fitted parameters or from every bootstrap draw at once, with extrapolation distances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fits.laws.base import RunConfig
from fits.laws.observations import FloatArray
from fits.laws.registry import get_law
from fits.laws.results import FitResult


def predict_loss(law: str, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
    """Loss predicted by `law` with `params` (fitted and fixed together) for `config`, broadcasting.

    NaN marks configurations outside the law's domain (a training factor <= 0, or P_post above a training
    precision). Parameter values may themselves be arrays (one per draw) that broadcast against the config.
    """
    return get_law(law).predict(params, config)


def draw_params(draws: FloatArray, draw_names: Sequence[str], fixed: Mapping[str, float], ndim: int) -> dict[str, Any]:
    """Parameter mapping whose fitted values are columns of `draws`, shaped (n_draws, 1, ..., 1) for broadcasting."""
    shape = (draws.shape[0],) + (1,) * ndim
    out: dict[str, Any] = dict(fixed)
    for j, name in enumerate(draw_names):
        out[name] = draws[:, j].reshape(shape)
    return out


def predict_loss_draws(
    law: str, draws: FloatArray, draw_names: Sequence[str], fixed: Mapping[str, float], config: RunConfig
) -> FloatArray:
    """predict_loss for every draw at once: shape (n_draws, *config.shape)."""
    shape = config.shape
    params = draw_params(np.asarray(draws, dtype=np.float64), draw_names, fixed, len(shape))
    out = predict_loss(law, params, config)
    return np.broadcast_to(out, (np.shape(draws)[0], *shape)).copy()


@dataclass(frozen=True)
class Prediction:
    """Point prediction, a bootstrap interval and how far the query lies outside the fitted data."""

    loss: FloatArray
    interval: tuple[FloatArray, FloatArray]
    extrapolation: dict[str, Any] = field(default_factory=dict)


def predict_with_interval(result: FitResult, config: RunConfig, *, level: float = 0.95) -> Prediction:
    """Loss at the fit's parameters, percentile interval over its draws, and extrapolation distances.

    extrapolation: n_params_ratio and n_tokens_ratio (query / largest fitted value; > 1 is beyond the data),
    and bits_outside_observed, the names of bit inputs outside the fitted range anywhere in the query.
    """
    loss = predict_loss(result.law, result.all_params, config)
    draws = result.draws[np.all(np.isfinite(result.draws), axis=1)]
    if draws.shape[0] >= 2:
        per_draw = predict_loss_draws(result.law, draws, result.draw_names, result.fixed, config)
        tail = 100.0 * (1.0 - level) / 2.0
        with np.errstate(invalid="ignore"):
            lo = np.nanpercentile(per_draw, tail, axis=0) if np.any(np.isfinite(per_draw)) else loss * np.nan
            hi = np.nanpercentile(per_draw, 100.0 - tail, axis=0) if np.any(np.isfinite(per_draw)) else loss * np.nan
    else:
        lo = hi = np.full_like(loss, np.nan)
    return Prediction(
        loss=loss,
        interval=(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)),
        extrapolation=extrapolation(result, config),
    )


def extrapolation(result: FitResult, config: RunConfig) -> dict[str, Any]:
    """How far a query lies outside the fitted data (ratios > 1 extrapolate; listed bits are outside the range
    of the inputs the law reads)."""
    rng = result.data_range
    out: dict[str, Any] = {
        "n_params_ratio": float(np.max(np.asarray(config.n_params, dtype=np.float64)) / rng["n_params_max"]),
        "n_tokens_ratio": float(np.max(np.asarray(config.n_tokens, dtype=np.float64)) / rng["n_tokens_max"]),
    }
    outside: list[str] = []
    for key in get_law(result.law).range_fields:
        value = getattr(config, key)
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if not arr.size:
            continue
        if f"{key}_min" not in rng or arr.min() < rng[f"{key}_min"] or arr.max() > rng[f"{key}_max"]:
            outside.append(key)
    out["bits_outside_observed"] = outside
    return out
