"""Admin for curve fits: read-only (a curve fit is an immutable version), team-scoped, with the runs' curves and
the fitted law drawn on the page."""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from fits.curve_pipeline import curve_family_data
from fits.curve_plots import curve_fit_svg, fitted_losses
from fits.models import FamilyCurveFit
from runs.admin import TEAM_FILTER, TeamScopedAdmin
from runs.admin_display import MISSING, datetime_html, decimal_html

CURVE_FIT_FIELDS = (
    "team",
    "family",
    "law",
    "version",
    "status",
    "error",
    "loss_key",
    "heldout_error",
    "curves_plot",
    "params_json",
    "intervals_json",
    "metrics_json",
    "run_metrics_json",
    "heldout_json",
    "warnings_json",
    "left_out_json",
    "run_ids",
    "data_fingerprint",
    "code_version",
    "created_at",
    "started_at",
    "finished_at",
)


def _json_html(value: Any) -> str:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(FamilyCurveFit)
class FamilyCurveFitAdmin(TeamScopedAdmin):
    """Curve fits of the user's teams: list, and a page with the parameters, the held-out score and the curves."""

    list_display = ["curve_fit_label", "team", "status", "n_runs", "rmse", "heldout_error", "created_on"]
    list_display_links = ["curve_fit_label"]
    list_filter = ["law", "status", "family", TEAM_FILTER]
    search_fields = ["family"]
    list_select_related = ["team"]
    readonly_fields = CURVE_FIT_FIELDS
    fields = CURVE_FIT_FIELDS
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # computed by the workers

    def has_change_permission(self, request: HttpRequest, obj: FamilyCurveFit | None = None) -> bool:
        return False  # immutable versions

    def has_delete_permission(self, request: HttpRequest, obj: FamilyCurveFit | None = None) -> bool:
        return False

    @admin.display(description="curve fit", ordering="family")
    def curve_fit_label(self, fit: FamilyCurveFit) -> str:
        return f"{fit.family} · {fit.law} v{fit.version}"

    @admin.display(description="runs")
    def n_runs(self, fit: FamilyCurveFit) -> str:
        return str(len(fit.run_ids)) if fit.run_ids else MISSING

    @admin.display(description="RMSE (nats)")
    def rmse(self, fit: FamilyCurveFit) -> str:
        return decimal_html(fit.metrics.get("rmse"), 4)

    @admin.display(description="held-out MAE (nats)")
    def heldout_error(self, fit: FamilyCurveFit) -> str:
        """Mean absolute error of the held-out forecasts of the final loss (lower is better)."""
        return decimal_html((fit.heldout or {}).get("mae"), 4)

    @admin.display(description="created", ordering="created_at")
    def created_on(self, fit: FamilyCurveFit) -> str:
        return datetime_html(fit.created_at)

    @admin.display(description="params")
    def params_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.params)

    @admin.display(description="intervals")
    def intervals_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.intervals)

    @admin.display(description="metrics")
    def metrics_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.metrics)

    @admin.display(description="per run")
    def run_metrics_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.run_metrics)

    @admin.display(description="held-out forecasts")
    def heldout_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.heldout)

    @admin.display(description="warnings")
    def warnings_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.warnings)

    @admin.display(description="left out")
    def left_out_json(self, fit: FamilyCurveFit) -> str:
        return _json_html(fit.left_out)

    @admin.display(description="curves")
    def curves_plot(self, fit: FamilyCurveFit) -> str:
        """The family's runs as they are now (binned) and, for a succeeded fit, its law along each run."""
        if fit.pk is None:
            return MISSING
        data = curve_family_data(team_id=fit.team_id, family=fit.family)
        predict = (
            fitted_losses(fit.law, fit.params, data.runs) if fit.status == FamilyCurveFit.Status.SUCCEEDED else None
        )
        svg = curve_fit_svg(
            data.runs,
            predict,
            title=f"{fit.family}: {fit.law} v{fit.version} (dots: histories now)",
            salt=f"cf-{fit.pk}",
        )
        if not svg:
            return "— (no loss and lr history in this family)"
        return format_html('<div class="curve-fit-plot">{}</div>', mark_safe(svg))  # matplotlib escapes its text
