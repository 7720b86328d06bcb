"""The planner app: fit versions per (team, family, law), predictions and plans."""

from django.apps import AppConfig


class PlannerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "planner"
    verbose_name = "Fits and plans"
