"""The ops app: what operators see of the running system; it reads other apps only through the app registry."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from ops.celery import connect_task_timing

        connect_task_timing()
