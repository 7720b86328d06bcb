"""The 16-bit density reference of each family, kept in step with its fits (runs.models.DensityReference).

Runs show their capacity density against the family's current reference fit (docs/api.md, Runs). runs cannot
read fits, so the pipeline writes the reference's constants where runs can: whenever a fit is published or
removed, the family's reference is pointed at its current reference fit, or dropped when it has none.
"""

import math

from fits.density_selectors import current_reference_fits
from fits.laws import get_law
from runs.models import DensityReference


def density_reference_refresh(*, team_id: int, family: str) -> None:
    """Point the family's DensityReference at its current reference fit (the first law of
    fits.laws.density_reference_laws with a succeeded fit), or remove it when there is none."""
    fit = current_reference_fits(scopes=[(team_id, family)]).get((team_id, family))
    constants = None
    if fit is not None:
        try:
            constants = get_law(fit.law).density_constants({**fit.fixed, **fit.params}).as_dict()
        except (KeyError, ValueError, TypeError):  # a fit row without the law's parameters: no reference
            constants = None
    if fit is None or constants is None or not all(math.isfinite(v) for v in constants.values()):
        DensityReference.objects.filter(team_id=team_id, family=family).delete()
        return
    DensityReference.objects.update_or_create(
        team_id=team_id,
        family=family,
        defaults={"law": fit.law, "fit_id": fit.pk, "fit_version": fit.version, "constants": constants},
    )
