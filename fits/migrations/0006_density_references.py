"""Fill runs' DensityReference from each family's current reference fit, as fits.references does from now on."""

import math

from django.db import migrations


def fill(apps, schema_editor):
    from fits.laws import density_reference_laws, get_law

    Fit = apps.get_model("fits", "Fit")
    DensityReference = apps.get_model("runs", "DensityReference")
    preference = density_reference_laws()
    best = {}
    fits = Fit.objects.filter(status="succeeded", law__in=preference).order_by("team_id", "family", "law", "version")
    for fit in fits.only("id", "team_id", "family", "law", "version", "params", "fixed"):
        key = (fit.team_id, fit.family)
        held = best.get(key)
        if held is None or preference.index(fit.law) < preference.index(held.law) or held.law == fit.law:
            best[key] = fit  # ordered by version: the newest of the preferred law wins
    for (team_id, family), fit in best.items():
        try:
            constants = get_law(fit.law).density_constants({**fit.fixed, **fit.params}).as_dict()
        except (KeyError, ValueError, TypeError):
            continue
        if all(math.isfinite(v) for v in constants.values()):
            DensityReference.objects.update_or_create(
                team_id=team_id,
                family=family,
                defaults={"law": fit.law, "fit_id": fit.pk, "fit_version": fit.version, "constants": constants},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("fits", "0005_family_changes"),
        ("runs", "0005_family_change_and_density_reference"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
