"""The workers app: Celery entry points only; the logic they call lives in fits.pipeline."""

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workers"
    verbose_name = "Workers"
