"""The ops app: what operators see of the running system; it reads other apps only through the app registry."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # A worker sets Django up (Celery's Django fixup) before it builds its consumer, so the heartbeat step
        # added here is part of every worker; config/celery.py imports no app.
        from celery import current_app

        from ops.celery import WorkerHeartbeat, connect_task_timing

        connect_task_timing()
        current_app.steps["consumer"].add(WorkerHeartbeat)  # each worker records that it is alive
