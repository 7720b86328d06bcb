"""The runs app: teams, API keys, training runs and their PTQ evaluations."""

from django.apps import AppConfig


class RunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from runs.api import openapi  # noqa: F401  (registers the OpenAPI extension for API keys)
