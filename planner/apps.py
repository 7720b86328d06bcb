"""The planner app: answer a compute budget (plans, allocation, next-run suggestions)."""

from django.apps import AppConfig


class PlannerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "planner"
    verbose_name = "Plans"
