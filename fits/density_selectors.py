"""Reads for capacity density (fits.density): the current fit of each family and the densities of runs.

A run's density uses its family's current fit: the newest succeeded `precision` fit, else the newest succeeded
`chinchilla` fit (docs/api.md, Runs). The fits of any number of families cost one query.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import OuterRef, Subquery

from fits.density import DensityTrend, FloatArray, capacity_density, density_trend
from fits.laws import density_reference_laws
from fits.models import Fit
from runs.models import Run, Team

Density = tuple[float | None, float | None]  # (effective_params_16bit, density)


def current_reference_fits(*, scopes: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Fit]:
    """The reference fit of each (team id, family): one query, only the columns density needs."""
    scopes = set(scopes)
    if not scopes:
        return {}
    preference = density_reference_laws()  # the first with a succeeded fit is the family's reference
    teams = {team_id for team_id, _ in scopes}
    families = {family for _, family in scopes}
    newest = (
        Fit.objects.filter(
            team_id=OuterRef("team_id"), family=OuterRef("family"), law=OuterRef("law"), status=Fit.Status.SUCCEEDED
        )
        .order_by("-version")
        .values("version")[:1]
    )
    fits = Fit.objects.filter(
        team_id__in=teams,
        family__in=families,
        law__in=preference,
        status=Fit.Status.SUCCEEDED,
        version=Subquery(newest),
    ).only("id", "team_id", "family", "law", "version", "params", "fixed", "run_ids")
    by_scope: dict[tuple[int, str], Fit] = {}
    rank = {law: i for i, law in enumerate(preference)}
    for fit in fits:
        key = (fit.team_id, fit.family)
        if key not in scopes:
            continue
        held = by_scope.get(key)
        if held is None or rank[fit.law] < rank[held.law]:
            by_scope[key] = fit
    return by_scope


@dataclass(frozen=True)
class FamilyDensityTrend:
    """The capacity density trend of a family's runs over their training dates (fits.density.density_trend)."""

    fit: Fit  # the 16-bit reference: the family's current precision fit, else its chinchilla fit
    n_runs: int  # the fit's runs still stored with a final loss
    first_trained_at: datetime | None  # of the runs with a defined density
    last_trained_at: datetime | None
    trend: DensityTrend


DENSITY_ROW_FIELDS = ("id", "n_params", "n_tokens", "final_loss", "weight_bits", "activation_bits", "kv_bits")


def fit_run_densities(*, fit: Fit) -> tuple[list[tuple[Any, ...]], FloatArray]:
    """The fit's runs still stored with a final loss, in training order, as rows (DENSITY_ROW_FIELDS then
    trained_at), and each one's capacity density under `fit` (NaN where undefined; all NaN when the fit row lacks
    the law's parameters). The API's trend and the fit page's plot both read this."""
    fitted = set(fit.run_ids)
    rows = [
        row
        for row in Run.objects.filter(team_id=fit.team_id, family=fit.family, final_loss__isnull=False)
        .order_by("trained_at", "id")
        .values_list(*DENSITY_ROW_FIELDS, "trained_at")
        if row[0] in fitted
    ]
    try:
        rho = capacity_density(
            {**fit.fixed, **fit.params},
            law=fit.law,
            n_params=[r[1] for r in rows],
            n_tokens=[r[2] for r in rows],
            final_loss=[float(r[3] or "nan") for r in rows],
        )
    except (KeyError, ValueError, TypeError):  # a fit row without the law's parameters: no density
        rho = np.full(len(rows), np.nan)
    return rows, np.asarray(rho, dtype=np.float64)


def family_density_trend(*, team: Team, family: str) -> FamilyDensityTrend | None:
    """The trend of ln(density) against trained_at over the runs the reference fit read; None without a fit."""
    fit = current_reference_fits(scopes=[(team.pk, family)]).get((team.pk, family))
    if fit is None:
        return None
    rows, rho = fit_run_densities(fit=fit)
    trained = [r[-1] for r in rows]
    defined = [at for at, value in zip(trained, rho, strict=True) if np.isfinite(value) and value > 0]
    origin = trained[0] if trained else None
    days = [(at - origin).total_seconds() / 86400.0 for at in trained] if origin is not None else []
    return FamilyDensityTrend(
        fit=fit,
        n_runs=len(rows),
        first_trained_at=min(defined, default=None),
        last_trained_at=max(defined, default=None),
        trend=density_trend(days, rho),
    )
