"""Reads for capacity density (fits.density): the current fit of each family and the densities of runs.

A run's density uses its family's current fit: the newest succeeded `precision` fit, else the newest succeeded
`chinchilla` fit (docs/api.md, Runs). The fits of any number of families cost one query.
"""

from collections.abc import Iterable, Sequence

import numpy as np
from django.db.models import OuterRef, Subquery

from fits.density import capacity_density, effective_params_16bit
from fits.json_numbers import finite_or_none
from fits.models import Fit, Law
from runs.models import Run

LAW_PREFERENCE = (Law.PRECISION, Law.CHINCHILLA)  # the first with a succeeded fit is the family's reference

Density = tuple[float | None, float | None]  # (effective_params_16bit, density)


def current_reference_fits(*, scopes: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Fit]:
    """The reference fit of each (team id, family): one query, only the columns density needs."""
    scopes = set(scopes)
    if not scopes:
        return {}
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
        law__in=LAW_PREFERENCE,
        status=Fit.Status.SUCCEEDED,
        version=Subquery(newest),
    ).only("id", "team_id", "family", "law", "version", "params", "fixed")
    by_scope: dict[tuple[int, str], Fit] = {}
    rank = {str(law): i for i, law in enumerate(LAW_PREFERENCE)}
    for fit in fits:
        key = (fit.team_id, fit.family)
        if key not in scopes:
            continue
        held = by_scope.get(key)
        if held is None or rank[fit.law] < rank[held.law]:
            by_scope[key] = fit
    return by_scope


def run_densities(*, runs: Sequence[Run]) -> dict[int, Density]:
    """(effective_params_16bit, density) per run id for runs with a final loss and a reference fit.

    Runs without a final loss, or whose family has no succeeded fit, are left out (their fields are None).
    """
    measured = [run for run in runs if run.final_loss is not None]
    fits = current_reference_fits(scopes=((run.team_id, run.family) for run in measured))
    out: dict[int, Density] = {}
    groups: dict[int, list[Run]] = {}
    for run in measured:
        fit = fits.get((run.team_id, run.family))
        if fit is not None:
            groups.setdefault(fit.pk, []).append(run)
    by_pk = {fit.pk: fit for fit in fits.values()}
    for fit_pk, members in groups.items():
        fit = by_pk[fit_pk]
        params = {**fit.fixed, **fit.params}
        n = np.array([r.n_params for r in members], dtype=np.float64)
        d = np.array([r.n_tokens for r in members], dtype=np.float64)
        loss = np.array([r.final_loss for r in members], dtype=np.float64)
        try:
            n_hat = effective_params_16bit(params, law=fit.law, n_tokens=d, final_loss=loss)
            rho = capacity_density(params, law=fit.law, n_params=n, n_tokens=d, final_loss=loss)
        except (KeyError, ValueError, TypeError):  # a fit row without the law's parameters: no reference
            continue
        for run, a, b in zip(members, n_hat, rho, strict=True):
            out[run.pk] = (finite_or_none(a), finite_or_none(b))
    return out
