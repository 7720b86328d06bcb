"""The fits app: keep every family's laws fitted (versions, refit pipeline, ranking, predictions)."""

from django.apps import AppConfig


class FitsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fits"
    verbose_name = "Fits"

    def ready(self) -> None:
        # runs announces its writes and asks for densities through runs.hooks, since it cannot import fits.
        from fits.density_selectors import run_densities
        from fits.pipeline import fit_scopes_mark_dirty
        from runs import hooks

        hooks.on_families_changed(lambda team_id, families: fit_scopes_mark_dirty(team_id=team_id, families=families))
        hooks.set_density_provider(lambda runs: run_densities(runs=runs))
