"""A family with succeeded fits of all three laws, fitted on real engine output (not hand-set parameters).

`planner.laws.fit_law` runs once per test session on Kumar's synthetic sweep (chinchilla and precision, with
PTQ evaluations, so the precision fit has its PTQ term) and on Sun et al.'s synthetic fp sweep (fp); each test
stores the three results as succeeded fits of one family, as the fit pipeline publishes them. The family has no
runs of its own: predictions, plans and suggestions read the fits alone, and no write can start a refit of it.
"""

from functools import cache

import numpy as np

from planner.laws import FitResult, fit_law, kumar_synthetic
from planner.laws.datasets import fp_synthetic
from planner.models import Fit
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
