"""Admin of MLflow experiments and runs: read-only views, team-scoped like every admin page of team data.

The runs list shows each MLflow run's Bitscale run and its mapping error, the reason a logged run is missing from
Bitscale or behind what MLflow holds.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from mlflow_compat.models import Experiment, MlflowRun
from runs.admin import TeamScopedAdmin
from runs.admin_display import datetime_html, epoch_ms_datetime

MAPPING_ERROR_CHARS = 80  # of the error's first line in the list


class ReadOnlyTeamAdmin(TeamScopedAdmin):
    """Rows written by MLflow clients through the API: viewed here, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any | None = None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyTeamAdmin):
    list_display = ["name", "team", "is_default", "lifecycle_stage", "created_at"]
    list_filter = ["lifecycle_stage"]
    search_fields = ["name"]
    list_select_related = ["team"]


@admin.register(MlflowRun)
class MlflowRunAdmin(ReadOnlyTeamAdmin):
    # What a reviewer scans for; the run id, params, tags and metrics are on the run's page.
    list_display = [
        "run_label",
        "experiment_name",
        "team",
        "status",
        "bitscale_run_link",
        "mapping_error_short",
        "history",
        "started",
    ]
    list_display_links = ["run_label"]
    list_filter = ["status", "lifecycle_stage"]
    search_fields = ["=run_id", "run_name"]
    list_select_related = ["team", "experiment", "experiment__team", "bitscale_run"]
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = ["started", "ended"]

    def get_fields(self, request: HttpRequest, obj: MlflowRun | None = None) -> Any:
        """Every field, the mapping error first (why the Bitscale run is missing or behind), the MLflow times as
        dates."""
        names = [f.name for f in MlflowRun._meta.fields if f.name not in {"id", "start_time", "end_time"}]
        names.remove("mapping_error")
        at = names.index("status") + 1
        return ["mapping_error", *names[:at], "started", "ended", *names[at:]]

    @admin.display(description="run", ordering="run_name")
    def run_label(self, obj: MlflowRun) -> str:
        return format_html('<span title="run id {}">{}</span>', obj.run_id, obj.run_name or obj.run_id[:8])

    @admin.display(description="experiment", ordering="experiment__name")
    def experiment_name(self, obj: MlflowRun) -> str:
        return obj.experiment.name  # its team is the team column (shown when the user sees several)

    @admin.display(description="Bitscale run", ordering="bitscale_run")
    def bitscale_run_link(self, obj: MlflowRun) -> str:
        if obj.bitscale_run_id is None:
            return "—"
        url = reverse("admin:runs_run_change", args=[obj.bitscale_run_id])
        return format_html('<a href="{}">{}</a>', url, obj.bitscale_run)

    @admin.display(description="mapping error")
    def mapping_error_short(self, obj: MlflowRun) -> str:
        """The error's first line, shortened; the whole of it on hover and on the run's page."""
        if not obj.mapping_error:
            return "—"
        first = obj.mapping_error.splitlines()[0]
        short = first if len(first) <= MAPPING_ERROR_CHARS else first[: MAPPING_ERROR_CHARS - 1] + "…"
        return format_html('<span class="mapping-error" title="{}">{}</span>', obj.mapping_error, short)

    @admin.display(description="history points", ordering="history_points")
    def history(self, obj: MlflowRun) -> str:
        kept = f"{obj.history_points:,}"
        return f"{kept} ({obj.history_dropped:,} dropped)" if obj.history_dropped else kept

    @admin.display(description="started", ordering="start_time")
    def started(self, obj: MlflowRun) -> str:
        return datetime_html(epoch_ms_datetime(obj.start_time), raw=obj.start_time)

    @admin.display(description="ended", ordering="end_time")
    def ended(self, obj: MlflowRun) -> str:
        return datetime_html(epoch_ms_datetime(obj.end_time), raw=obj.end_time)
