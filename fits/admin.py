"""Admin for fits: read-only (a fit is an immutable version), with intervals, the diff from the last version,
the family's law comparison and plots."""

import hashlib
from typing import Any, cast

from django.contrib import admin
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from fits.density_selectors import fit_run_densities
from fits.models import Fit, FitQuerySet
from fits.plots import Plot, density_over_time_svg
from fits.review import (
    PLOTS_CACHE_SECONDS,
    PLOTS_CACHE_VERSION,
    backtest_rows,
    fit_diff,
    fit_plots,
    fit_previous,
    interval_rows,
    law_comparison,
    screened_rows,
)
from fits.services import fits_delete
from runs.admin import TEAM_FILTER, TeamScopedAdmin, is_superuser

FIT_FIELDS = (
    "team",
    "family",
    "law",
    "version",
    "status",
    "objective",
    "n_bootstrap",
    "code_version",
    "data_fingerprint",
    "error",
    "created_at",
    "started_at",
    "finished_at",
)


DENSITY_PLOT_VERSION = 2  # bump when the density plot changes


def fit_density_plot(fit: Fit) -> Plot:
    """Capacity density of the fit's runs (those still stored, with a final loss) against when they were
    trained, relative to this fit's 16-bit curve; cached per fit and training dates (a fit never changes, but a
    run's trained_at may be corrected without changing what the fit reads)."""
    rows, density = fit_run_densities(fit=fit)
    dates = hashlib.sha256(repr([(r[0], r[-1].isoformat()) for r in rows]).encode()).hexdigest()[:16]
    key = f"fit-density:{fit.pk}:{fit.version}:{PLOTS_CACHE_VERSION}:{DENSITY_PLOT_VERSION}:{dates}"
    cached: Plot | None = cache.get(key)
    if cached is not None:
        return cached
    svg = density_over_time_svg(  # all NaN (no density defined) draws the message saying so
        [r[-1] for r in rows],
        density,
        bits=[min(r[4], r[5], r[6]) for r in rows],
        reference=f"{fit.law} v{fit.version} at 16 bits",
    )
    plot = Plot("density", "Capacity density over time", svg)
    cache.set(key, plot, PLOTS_CACHE_SECONDS)
    return plot


@admin.register(Fit)
class FitAdmin(TeamScopedAdmin):
    """Fits of the user's teams: list, and a review page with intervals, diff from the last version and plots."""

    change_form_template = "admin/fits/fit/change_form.html"
    list_display = ["__str__", "team", "family", "law", "version", "status", "n_runs", "r2", "created_at"]
    list_filter = ["law", "status", "family", TEAM_FILTER]
    search_fields = ["family"]
    list_select_related = ["team"]
    fields = readonly_fields = FIT_FIELDS
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fit]:
        return cast(FitQuerySet, super().get_queryset(request)).without_blobs()  # Fit's manager makes a FitQuerySet

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # fits are computed by the refit pipeline

    def has_change_permission(self, request: HttpRequest, obj: Fit | None = None) -> bool:
        return False  # immutable versions

    def has_delete_permission(self, request: HttpRequest, obj: Fit | None = None) -> bool:
        return is_superuser(request)

    def delete_model(self, request: HttpRequest, obj: Fit) -> None:
        fits_delete(fits=Fit.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Fit]) -> None:
        fits_delete(fits=queryset)

    @admin.display(description="runs")
    def n_runs(self, fit: Fit) -> int | None:
        value = fit.metrics.get("n_runs")
        return int(value) if value is not None else None

    @admin.display(description="R²")
    def r2(self, fit: Fit) -> str:
        value = fit.metrics.get("r2")
        return "" if value is None else f"{value:.4f}"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        fit = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if fit is not None:
            context["law_comparison"] = law_comparison(fit=fit)  # the fit's team: the page is already team-scoped
        if fit is not None and fit.status == Fit.Status.SUCCEEDED:
            previous = fit_previous(fit=fit)
            scheme, backtest = backtest_rows(fit=fit)
            context.update(
                review=True,
                param_rows=interval_rows(fit=fit),
                fixed=sorted(fit.fixed.items()),
                metrics=sorted(fit.metrics.items()),
                backtest_scheme=scheme,
                backtest=backtest,
                screened=screened_rows(fit=fit),
                screening_on=fit.screen_outliers,
                warnings=fit.warnings,
                previous=previous,
                diff=fit_diff(fit=fit, previous=previous) if previous is not None else None,
                plots=[*fit_plots(fit=fit), fit_density_plot(fit)],
            )
        return super().change_view(request, object_id, form_url, extra_context=context)
