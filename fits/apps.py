"""The fits app: keep every family's laws fitted (versions, refit pipeline, ranking, predictions)."""

from django.apps import AppConfig


class FitsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fits"
    verbose_name = "Fits"
