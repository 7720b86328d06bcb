"""A family with succeeded fits of all three laws, fitted on real engine output (not hand-set parameters).

`fits.laws.fit_law` runs once per test session on Kumar's synthetic sweep (chinchilla and precision, with
PTQ evaluations, so the precision fit has its PTQ term) and on Sun et al.'s synthetic fp sweep (fp); each test
stores the three results as succeeded fits of one family, as the fit pipeline publishes them. The family has no
runs of its own: predictions, plans and suggestions read the fits alone, and no write can start a refit of it.
"""

from functools import cache
from typing import Any

import numpy as np

from fits.laws import FitResult, fit_law, kumar_synthetic
from fits.laws.datasets import fp_synthetic
from fits.models import Fit
from runs.models import Team

FAMILY = "fitted"
N_BOOTSTRAP = 12  # suggestions need a few finite draws; more only slows the session's one fit


@cache
def fitted_results() -> dict[str, FitResult]:
    kumar, _ = kumar_synthetic(seed=3)
    fp = fp_synthetic(seed=0)
    return {
        "chinchilla": fit_law("chinchilla", kumar, n_bootstrap=N_BOOTSTRAP, seed=1),
        "precision": fit_law("precision", kumar, n_bootstrap=N_BOOTSTRAP, seed=1),
        "fp": fit_law("fp", fp, n_bootstrap=N_BOOTSTRAP, seed=1),
    }


def store_fitted_family(team: Team, family: str = FAMILY) -> dict[str, Fit]:
    """Succeeded fits of chinchilla, precision and fp for `team`'s `family`; returns them by law."""
    out = {}
    for law, result in fitted_results().items():
        out[law] = Fit.objects.create(
            team=team,
            family=family,
            law=law,
            version=1,
            status=Fit.Status.SUCCEEDED,
            n_bootstrap=N_BOOTSTRAP,
            params=result.params,
            intervals={k: [v[0], v[1]] for k, v in result.intervals.items()},
            fixed=result.fixed,
            metrics=result.metrics,
            backtest=result.backtest,
            warnings=result.warnings,
            data_range=result.data_range,
            draw_names=result.draw_names,
            draws=np.ascontiguousarray(result.draws, dtype=np.float64).tobytes(),
        )
    return out


def _names_a_field(errors: Any, request: dict[str, Any]) -> bool:
    """True when every key of the error map is a field of the request (nested as sent) or non_field_errors."""
    if not isinstance(errors, dict) or not errors:
        return False
    for key, value in errors.items():
        if key == "non_field_errors":
            continue
        if key not in request:
            return False
        if isinstance(value, dict) and isinstance(request[key], dict) and not _names_a_field(value, request[key]):
            return False
    return True


def problems(responses: list[tuple[dict[str, Any], Any]]) -> list[str]:
    out = []
    for request, response in responses:
        status = response.status_code
        if status >= 500:
            out.append(f"{status} for {request}")
        elif status >= 400:
            errors = response.json().get("errors")
            if status == 409 and set(errors or {}) == {"detail"}:
                continue  # no fit of the law asked for (an auto plan on a law that cannot serve): documented
            if not _names_a_field(errors, request):
                out.append(f"{status} without naming a field of the request: {errors} for {request}")
    return out
