"""Admin for fits (read-only: a fit is an immutable version) with parameters, diff and plots; and plans."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from planner.models import Fit
from planner.review import fit_diff, fit_plots, fit_previous, interval_rows
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


@admin.register(Fit)
class FitAdmin(TeamScopedAdmin):
    """Fits of the user's teams: list, and a review page with intervals, diff from the last version and plots."""

    change_form_template = "admin/planner/fit/change_form.html"
    list_display = ["__str__", "team", "family", "law", "version", "status", "n_runs", "r2", "created_at"]
    list_filter = ["law", "status", "family", TEAM_FILTER]
    search_fields = ["family"]
    list_select_related = ["team"]
    fields = readonly_fields = FIT_FIELDS
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fit]:
        return super().get_queryset(request).defer("draws", "point_state", "snapshot")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # fits are computed by the refit pipeline

    def has_change_permission(self, request: HttpRequest, obj: Fit | None = None) -> bool:
        return False  # immutable versions

    def has_delete_permission(self, request: HttpRequest, obj: Fit | None = None) -> bool:
        return is_superuser(request)

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
        if fit is not None and fit.status == Fit.Status.SUCCEEDED:
            previous = fit_previous(fit=fit)
            context.update(
                review=True,
                param_rows=interval_rows(fit=fit),
                fixed=sorted(fit.fixed.items()),
                metrics=sorted(fit.metrics.items()),
                backtest=sorted(fit.backtest.items()),
                warnings=fit.warnings,
                previous=previous,
                diff=fit_diff(fit=fit, previous=previous) if previous is not None else None,
                plots=fit_plots(fit=fit),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)
