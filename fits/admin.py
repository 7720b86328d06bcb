"""Admin for fits: read-only (a fit is an immutable version), with intervals, the diff from the last version,
the family's law comparison and plots."""

from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from fits.curve_admin import FamilyCurveFitAdmin
from fits.models import Fit, FitQuerySet
from fits.review import (
    PLOT_TITLES,
    PLOTS_CACHE_VERSION,
    backtest_rows,
    fit_density_plot,
    fit_diff,
    fit_plot,
    fit_plot_keys,
    fit_previous,
    fit_verdict,
    interval_rows,
    law_comparison,
    screened_rows,
)
from fits.run_admin import RunWithForecastAdmin
from fits.services import fits_delete
from runs.admin import TEAM_FILTER, TeamScopedAdmin, is_superuser
from runs.admin_display import MISSING, datetime_html, decimal_html

__all__ = ["FamilyCurveFitAdmin", "FitAdmin", "RunWithForecastAdmin", "fit_density_plot"]

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
VERDICT_COLOURS = {"good": "#2e7d32", "warning": "#b26a00", "bad": "#ba2121", "pending": "#666666"}
PLOT_MAX_AGE_SECONDS = 3600  # the browser keeps a plot this long; the URL names the fit and the plot code version


def verdict_html(fit: Fit) -> str:
    verdict = fit_verdict(fit=fit)
    return format_html(
        '<span class="fit-verdict fit-verdict-{}" title="{}" style="color: {}; font-weight: bold">{}</span>',
        verdict.level,
        verdict.detail,
        VERDICT_COLOURS.get(verdict.level, "inherit"),
        verdict.label,
    )


@admin.register(Fit)
class FitAdmin(TeamScopedAdmin):
    """Fits of the user's teams: list, and a review page with intervals, diff from the last version and plots."""

    change_form_template = "admin/fits/fit/change_form.html"
    # What a reviewer scans for (the rest is on the fit's page); `team` only for a user who sees several teams.
    list_display = ["fit_label", "team", "verdict", "n_runs", "r2", "backtest_error", "created_on"]
    list_display_links = ["fit_label"]
    list_filter = ["law", "status", "family", TEAM_FILTER]
    search_fields = ["family"]
    list_select_related = ["team"]
    readonly_fields = FIT_FIELDS
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fit]:
        return cast(FitQuerySet, super().get_queryset(request)).without_blobs()  # Fit's manager makes a FitQuerySet

    def get_fields(self, request: HttpRequest, obj: Fit | None = None) -> Any:
        """A failed fit's reason comes first: it is what a reviewer opens the page for."""
        if obj is not None and obj.status == Fit.Status.FAILED:
            return ["error", *(name for name in FIT_FIELDS if name != "error")]
        return list(FIT_FIELDS)

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

    @admin.display(description="fit", ordering="family")
    def fit_label(self, fit: Fit) -> str:
        return f"{fit.family} · {fit.law} v{fit.version}"

    @admin.display(description="verdict", ordering="status")
    def verdict(self, fit: Fit) -> str:
        return verdict_html(fit)

    @admin.display(description="runs")
    def n_runs(self, fit: Fit) -> str:
        value = fit.metrics.get("n_runs")
        return str(int(value)) if value is not None else MISSING

    @admin.display(description="R²")
    def r2(self, fit: Fit) -> str:
        return decimal_html(fit.metrics.get("r2"))

    @admin.display(description="backtest error")
    def backtest_error(self, fit: Fit) -> str:
        """RMSE of log loss on the held-out runs (the ranking's score; lower is better)."""
        return decimal_html((fit.backtest or {}).get("rmse_log_runs"), 3)

    @admin.display(description="created", ordering="created_at")
    def created_on(self, fit: Fit) -> str:
        return datetime_html(fit.created_at)

    # Plots: one URL each, so the page never waits for one ------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        plot = path(
            "<path:object_id>/plot/<slug:key>.svg",
            self.admin_site.admin_view(self.plot_view, cacheable=True),
            name="fits_fit_plot",
        )
        return [plot, *super().get_urls()]

    def plot_view(self, request: HttpRequest, object_id: str, key: str) -> HttpResponse:
        """One plot of a succeeded fit of the user's teams as SVG (rendered on the first request, then cached)."""
        fit = self.get_object(request, object_id)
        if fit is None or not self.has_view_permission(request, fit) or fit.status != Fit.Status.SUCCEEDED:
            raise Http404("No such fit.")
        if key not in PLOT_TITLES:
            raise Http404("No such plot.")
        response = HttpResponse(fit_plot(fit=fit, key=key).svg, content_type="image/svg+xml; charset=utf-8")
        response["Cache-Control"] = f"private, max-age={PLOT_MAX_AGE_SECONDS}"
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        fit = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if fit is not None:
            context["law_comparison"] = law_comparison(fit=fit)  # the fit's team: the page is already team-scoped
            context["verdict"] = fit_verdict(fit=fit)
            context["verdict_html"] = verdict_html(fit)
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
                plots=[
                    {
                        "key": key,
                        "title": PLOT_TITLES[key],
                        "url": reverse("admin:fits_fit_plot", args=[fit.pk, key]) + f"?v={PLOTS_CACHE_VERSION}",
                    }
                    for key in fit_plot_keys()
                ],
            )
        return super().change_view(request, object_id, form_url, extra_context=context)
