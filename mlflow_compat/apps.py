from django.apps import AppConfig


class MlflowCompatConfig(AppConfig):
    """A tested subset of MLflow's tracking REST API under /api/2.0/mlflow/, writing Bitscale runs (docs/mlflow.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mlflow_compat"
    verbose_name = "MLflow tracking"
