"""Backtest: refit without some runs and score the predictions of their final losses (docs/laws-engine.md).

The held-out runs are chosen from the run sizes alone, so every law fitted to the same runs is scored on the same
held-out runs:
- ``largest_n`` (at least LARGEST_N_MIN_SIZES distinct model sizes): every run of the largest N. The fit keeps
  three or more sizes, which every law needs with untied exponents.
- ``largest_compute`` (fewer sizes): the runs of largest compute N*D, about HOLD_OUT_FRACTION of them, taken
  from the top down as long as the remaining runs keep every model size and at least three token counts. On a
  3-size sweep these are the largest model's longest runs (and, when it has few, the next size's): the law is
  asked to extrapolate in compute, and the fit still spans the sizes it needs.
The refit applies the same screening rule as the fit itself (fits.laws.screening), so the score measures the
whole procedure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from fits.laws.base import PointFit, RunConfig, ScalingLaw
from fits.laws.equations import DIMS
from fits.laws.observations import FitFailed, FloatArray, Observations
from fits.laws.screening import fit_screened, run_residuals

LARGEST_N_MIN_SIZES = 4
HOLD_OUT_FRACTION = 0.25
MIN_TOKEN_COUNTS = 3
SCHEMES = ("largest_n", "largest_compute")
SCHEME_TEXT = {"largest_n": "the runs of the largest N", "largest_compute": "the largest-compute runs"}  # held out
BoolArray = npt.NDArray[np.bool_]


def _distinct(x: FloatArray) -> int:
    return int(np.unique(x).shape[0])


def choose_scheme(data: Observations) -> str:
    """`largest_n` with at least LARGEST_N_MIN_SIZES distinct model sizes, else `largest_compute`."""
    return "largest_n" if _distinct(data.n_params) >= LARGEST_N_MIN_SIZES else "largest_compute"


def held_out_mask(data: Observations, scheme: str) -> BoolArray:
    """The runs the backtest holds out under `scheme` (module docstring); may be empty."""
    if scheme == "largest_n":
        return np.asarray(data.n_params == data.n_params.max(), dtype=bool)
    if scheme != "largest_compute":
        raise ValueError(f"unknown backtest scheme {scheme!r}; expected one of {SCHEMES}")
    compute = data.n_params * data.n_tokens
    target = max(1, math.ceil(HOLD_OUT_FRACTION * data.n_runs))
    sizes = _distinct(data.n_params)
    held = np.zeros(data.n_runs, dtype=bool)
    for level in np.unique(compute)[::-1]:
        trial = held | (compute == level)
        rest = ~trial
        if not np.any(rest):
            break
        if _distinct(data.n_params[rest]) < sizes or _distinct(data.n_tokens[rest]) < MIN_TOKEN_COUNTS:
            continue  # this configuration is needed in the fit; try the next largest compute
        held = trial
        if int(held.sum()) >= target:
            break
    return held


def _eval_residuals(law: ScalingLaw, params: dict[str, float], held: Observations) -> FloatArray:
    """log L_hat - log L of the held-out runs' PTQ evaluations inside the PTQ law's domain (P_post at most every
    training precision and below the weight bits)."""
    runs = held.eval_run
    post = held.eval_post_bits
    inside = post < held.weight_bits[runs]
    for d in DIMS:
        inside &= post <= held.bits(d)[runs]
    if not np.any(inside):
        return np.zeros(0)
    with np.errstate(all="ignore"):
        pred = law.predict(params, RunConfig.of_evaluations(held, inside))
        out = np.log(np.asarray(pred, dtype=np.float64)) - np.log(held.eval_loss[inside])
    return np.asarray(out[np.isfinite(out)], dtype=np.float64)


def run_backtest(
    law: ScalingLaw,
    data: Observations,
    point: PointFit,
    *,
    objective: str,
    seed: int,
    tie_exponents: bool,
    screen_outliers: bool,
    scheme: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Backtest of `point` (the fit of `law` to `data`): the scheme's held-out runs, predicted by the same
    procedure (screening included) applied to the other runs.

    `scheme` overrides choose_scheme (for comparing schemes; fits always use the chosen one). Returns the
    backtest record (docs/laws-engine.md, Backtest) and warnings; a refit that fails leaves a record with the
    scheme and `n_held_out` only, and a warning starting "backtest not computed".
    """
    scheme = scheme or choose_scheme(data)
    held_mask = held_out_mask(data, scheme)
    held = data.subset(held_mask)
    train = data.subset(~held_mask)
    record: dict[str, Any] = {
        "scheme": scheme,
        "held_out_n_params": sorted({float(v) for v in held.n_params}),
        "n_sizes_fitted": float(_distinct(train.n_params)),
        "n_held_out": float(held.n_runs + (held.n_evals if point.ptq else 0)),
    }
    what = "the largest N" if scheme == "largest_n" else "the largest-compute runs"
    if held.n_runs == 0:
        return record, [f"backtest not computed (no runs can be held out under the {scheme} scheme)"]
    try:
        sub, screening = fit_screened(
            law, train, objective=objective, seed=seed, tie_exponents=tie_exponents, screen_outliers=screen_outliers
        )
    except FitFailed as exc:
        return record, [f"backtest not computed (fit without {what} failed: {exc})"]
    params = sub.params | sub.fixed
    r_runs = run_residuals(law, params, held)
    r_runs = r_runs[np.isfinite(r_runs)]
    r_evals = _eval_residuals(law, params, held) if (point.ptq and sub.ptq and held.n_evals) else np.zeros(0)
    r = np.concatenate([r_runs, r_evals])
    if r.shape[0] == 0:
        return record, ["backtest not computed: no finite prediction for the held-out runs"]
    record.update(
        rmse_log=float(np.sqrt(np.mean(r * r))),
        mean_signed_error=float(np.mean(r)),
        n_held_out=float(r.shape[0]),
        n_screened=float(int(np.sum(~screening.keep))),
    )
    if r_runs.shape[0]:
        # Final losses only: the score every law can be compared on (laws without a PTQ term predict no
        # evaluations), used to rank laws (docs/laws-engine.md, Law comparison).
        record["rmse_log_runs"] = float(np.sqrt(np.mean(r_runs * r_runs)))
        record["n_held_out_runs"] = float(r_runs.shape[0])
    return record, []


__all__ = [
    "HOLD_OUT_FRACTION",
    "LARGEST_N_MIN_SIZES",
    "SCHEMES",
    "choose_scheme",
    "held_out_mask",
    "run_backtest",
]
