"""MLflow's experiments and runs as a team logged them, each run linked to the Bitscale run it maps to."""

from django.db import models
from django.db.models import Q

from runs.models import Run, Team

ACTIVE, DELETED = "active", "deleted"
LIFECYCLE_STAGES = [(ACTIVE, "Active"), (DELETED, "Deleted")]


class Experiment(models.Model):
    """An MLflow experiment of a team. Its id is the row's id as a string; the team's default experiment ("0",
    named "Default") is a row too, created on first use."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="mlflow_experiments")
    name = models.CharField(max_length=500)
    is_default = models.BooleanField(default=False)
    lifecycle_stage = models.CharField(max_length=20, choices=LIFECYCLE_STAGES, default=ACTIVE)
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="mlflow_experiment_name_unique_per_team"),
            models.UniqueConstraint(
                fields=["team"], condition=Q(is_default=True), name="mlflow_experiment_one_default_per_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.team.slug})"

    @property
    def experiment_id(self) -> str:
        return "0" if self.is_default else str(self.pk)


class MlflowRun(models.Model):
    """An MLflow run: what the client logged (params, tags, each metric's latest value) and the Bitscale run it
    maps to. `mapping_error` says why the Bitscale run is missing or behind; the MLflow calls succeed anyway."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING"
        SCHEDULED = "SCHEDULED"
        FINISHED = "FINISHED"
        FAILED = "FAILED"
        KILLED = "KILLED"

    run_id = models.CharField(max_length=32, unique=True)  # a uuid4 in hex, as MLflow's own ids
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="mlflow_runs")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    bitscale_run = models.OneToOneField(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="mlflow_run"
    )
    run_name = models.CharField(max_length=250, blank=True)
    user_id = models.CharField(max_length=250, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    lifecycle_stage = models.CharField(max_length=20, choices=LIFECYCLE_STAGES, default=ACTIVE)
    start_time = models.BigIntegerField(null=True, blank=True)  # ms since the epoch
    end_time = models.BigIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # {key: [value, timestamp, step]} of each metric's latest point; NaN and ±Infinity as "NaN", "Infinity",
    # "-Infinity" (PostgreSQL's json has no such numbers).
    metrics = models.JSONField(default=dict, blank=True)
    history_points = models.PositiveIntegerField(default=0)
    history_dropped = models.PositiveIntegerField(default=0, help_text="Points not kept: past the per-run bound.")
    synced = models.JSONField(default=dict, blank=True, help_text="The Bitscale run's fields as last written.")
    mapping_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_time", "-id"]
        verbose_name = "MLflow run"
        indexes = [models.Index(fields=["team", "experiment", "-start_time"], name="mlflowrun_team_exp_start")]

    def __str__(self) -> str:
        return self.run_name or self.run_id


class PendingMetricPoint(models.Model):
    """A metric point logged before its run's n_params and n_tokens were known, so before its Bitscale run
    existed; moved to runs.MetricPoint when that run is written. NULL `value` is NaN (SQLite stores NaN as NULL)."""

    mlflow_run = models.ForeignKey(MlflowRun, on_delete=models.CASCADE, related_name="pending_points")
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True)
    step = models.BigIntegerField(default=0)
    timestamp = models.BigIntegerField()

    class Meta:
        ordering = ["mlflow_run_id", "id"]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]"
