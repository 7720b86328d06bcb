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
    list_display = ["id", "name", "team", "is_default", "lifecycle_stage", "created_at"]
    list_filter = ["lifecycle_stage"]
    search_fields = ["name"]
    list_select_related = ["team"]


@admin.register(MlflowRun)
class MlflowRunAdmin(ReadOnlyTeamAdmin):
    list_display = [
        "run_id",
        "run_name",
        "experiment",
        "team",
        "status",
        "bitscale_run_link",
        "mapping_error",
        "history_points",
        "history_dropped",
        "start_time",
    ]
    list_filter = ["status", "lifecycle_stage"]
    search_fields = ["=run_id", "run_name"]
    list_select_related = ["team", "experiment", "experiment__team", "bitscale_run"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Bitscale run", ordering="bitscale_run")
    def bitscale_run_link(self, obj: MlflowRun) -> str:
        if obj.bitscale_run_id is None:
            return "—"
        url = reverse("admin:runs_run_change", args=[obj.bitscale_run_id])
        return format_html('<a href="{}">{}</a>', url, obj.bitscale_run)
