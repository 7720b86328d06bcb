"""Teams, their members and API keys, and the training runs they report with PTQ evaluations."""

from hashlib import sha256

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

MAX_N_PARAMS = 10**14
MAX_N_TOKENS = 10**16
MIN_BITS, MAX_BITS = 1.0, 32.0
# The floating-point format a run trained in (Sun et al. 2025): E exponent and M mantissa bits, plus a sign bit.
MIN_EXPONENT_BITS, MAX_EXPONENT_BITS = 1, 8  # 8: bf16 and fp32
MIN_MANTISSA_BITS, MAX_MANTISSA_BITS = 0, 23  # 23: fp32
MAX_LOSS = 100.0

# The client-writable fields of a run, in the order the API shows them and the CSV export writes them.
RUN_FIELDS = (
    "external_id",
    "name",
    "family",
    "n_params",
    "param_count",
    "n_tokens",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "number_format",
    "exponent_bits",
    "mantissa_bits",
    "final_loss",
    "status",
    "dataset",
    "eval_set",
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "seq_len",
    "metadata",
    "excluded",
    "exclusion_reason",
    "trained_at",
)
# Extension fields of a run (issue 24), written and shown by the API after RUN_FIELDS; not in the CSV export.
RUN_SCHEDULE_FIELDS = ("schedule", "cooldown_of")
# A run's trained_at may lie this far after the server's clock (a training node's clock may run ahead).
TRAINED_AT_MAX_SKEW_SECONDS = 300


class Team(models.Model):
    """A group that owns runs, fits and plans; nothing of one team is visible to another."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Membership(models.Model):
    """A user's role in a team; staff users see the teams they belong to in the admin."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
            models.CheckConstraint(condition=Q(role__in=["owner", "member", "viewer"]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def api_key_digest(secret: str) -> str:
    """The sha256 of a key, the only form in which keys are stored."""
    return sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    """A team's API key; only the sha256 of the secret is stored, and the secret is shown once."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="sha256 of the key, hex.")
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        access = "read-only" if self.read_only else "read-write"
        return f"{self.prefix}… ({self.team.slug}, {access})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Run(models.Model):
    """One trained model reported by a team; finished, non-excluded runs feed the fits."""

    class ParamCount(models.TextChoices):
        NON_EMBEDDING = "non_embedding", "Non-embedding"
        TOTAL = "total", "Total"

    class NumberFormat(models.TextChoices):
        INT = "int", "Integer"
        FP = "fp", "Floating point"
        MIXED = "mixed", "Mixed"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        DIVERGED = "diverged", "Diverged"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="runs")
    # The client's idempotency key. NULL, not "", when absent: the per-team uniqueness must not apply to it.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    name = models.CharField(max_length=200, blank=True)
    family = models.SlugField(max_length=100, default="default")  # fits are per family
    n_params = models.BigIntegerField()  # N, up to 1e14
    param_count = models.CharField(max_length=20, choices=ParamCount.choices, default=ParamCount.NON_EMBEDDING)
    n_tokens = models.BigIntegerField()  # D, up to 1e16: beyond float precision, hence an integer
    weight_bits = models.FloatField(default=16)  # fractional allowed: 4.25 = MXFP4 with scales
    activation_bits = models.FloatField(default=16)
    kv_bits = models.FloatField(default=16)
    number_format = models.CharField(max_length=10, choices=NumberFormat.choices, default=NumberFormat.FP)
    exponent_bits = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=(
            "E of the floating-point format the run trained in (the GEMM inputs, as Sun et al. 2025 quantize "
            "them): bf16 E8M7, fp16 E5M10, FP8 E4M3 or E5M2, FP4 E2M1. Only with number_format fp, and only "
            "together with mantissa_bits."
        ),
    )
    mantissa_bits = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="M of the floating-point format the run trained in (bf16 E8M7: 7); set with exponent_bits.",
    )
    final_loss = models.FloatField(null=True, blank=True)  # nats, before any PTQ
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FINISHED)
    dataset = models.CharField(max_length=200, blank=True)
    eval_set = models.CharField(max_length=200, blank=True)
    n_layers = models.PositiveIntegerField(null=True, blank=True)
    d_model = models.PositiveIntegerField(null=True, blank=True)
    n_heads = models.PositiveIntegerField(null=True, blank=True)
    n_kv_heads = models.PositiveIntegerField(null=True, blank=True)
    seq_len = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    excluded = models.BooleanField(default=False)
    exclusion_reason = models.TextField(blank=True)
    # When training finished, as the client reports it (default: registration); capacity density's trend uses it.
    trained_at = models.DateTimeField(default=timezone.now)
    # The planned learning-rate schedule, described (runs.schedules.schedule_clean's stored form), or None. A
    # forecast of the run's final loss needs its future learning rates (docs/curves.md, "Forecasts").
    schedule = models.JSONField(null=True, blank=True)
    # The run is the end of a cooldown branched off this trunk run of the same team: the trunk's losses before the
    # branch are its history too, and its final loss is a cooled (N, D, loss) point (docs/curves.md, section 6).
    cooldown_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="cooldowns")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]  # a stable order for cursor pagination
        constraints = [
            models.UniqueConstraint(fields=["team", "external_id"], name="run_external_id_unique_per_team"),
            models.CheckConstraint(
                condition=Q(n_params__gte=1, n_params__lte=MAX_N_PARAMS), name="run_n_params_in_range"
            ),
            models.CheckConstraint(
                condition=Q(n_tokens__gte=1, n_tokens__lte=MAX_N_TOKENS), name="run_n_tokens_in_range"
            ),
            models.CheckConstraint(
                condition=Q(
                    weight_bits__gte=MIN_BITS,
                    weight_bits__lte=MAX_BITS,
                    activation_bits__gte=MIN_BITS,
                    activation_bits__lte=MAX_BITS,
                    kv_bits__gte=MIN_BITS,
                    kv_bits__lte=MAX_BITS,
                ),
                name="run_bits_in_range",
            ),
            models.CheckConstraint(
                condition=Q(final_loss__isnull=True) | Q(final_loss__gt=0, final_loss__lt=MAX_LOSS),
                name="run_final_loss_in_range",
            ),
            models.CheckConstraint(
                condition=~Q(status="finished") | Q(final_loss__isnull=False), name="run_finished_has_loss"
            ),
            models.CheckConstraint(
                condition=Q(excluded=False) | ~Q(exclusion_reason=""), name="run_exclusion_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["running", "finished", "failed", "diverged"]), name="run_status_valid"
            ),
            models.CheckConstraint(condition=Q(number_format__in=["int", "fp", "mixed"]), name="run_format_valid"),
            models.CheckConstraint(
                condition=Q(param_count__in=["non_embedding", "total"]), name="run_param_count_valid"
            ),
            models.CheckConstraint(
                condition=Q(exponent_bits__isnull=True, mantissa_bits__isnull=True)
                | Q(exponent_bits__isnull=False, mantissa_bits__isnull=False),
                name="run_float_format_both_or_neither",
            ),
            models.CheckConstraint(
                condition=Q(exponent_bits__isnull=True) | Q(number_format="fp"), name="run_float_format_is_fp"
            ),
            models.CheckConstraint(
                condition=(
                    (
                        Q(exponent_bits__isnull=True)
                        | Q(exponent_bits__gte=MIN_EXPONENT_BITS, exponent_bits__lte=MAX_EXPONENT_BITS)
                    )
                    & (
                        Q(mantissa_bits__isnull=True)
                        | Q(mantissa_bits__gte=MIN_MANTISSA_BITS, mantissa_bits__lte=MAX_MANTISSA_BITS)
                    )
                ),
                name="run_float_format_in_range",
            ),
            models.CheckConstraint(
                condition=(
                    (Q(n_layers__isnull=True) | Q(n_layers__gte=1))
                    & (Q(d_model__isnull=True) | Q(d_model__gte=1))
                    & (Q(n_heads__isnull=True) | Q(n_heads__gte=1))
                    & (Q(n_kv_heads__isnull=True) | Q(n_kv_heads__gte=1))
                    & (Q(seq_len__isnull=True) | Q(seq_len__gte=1))
                ),
                name="run_architecture_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["team", "-created_at", "-id"], name="run_team_created"),
            models.Index(fields=["team", "family", "-created_at", "-id"], name="run_team_family_created"),
            models.Index(fields=["team", "-trained_at", "-id"], name="run_team_trained"),
            models.Index(fields=["team", "family", "status", "excluded"], name="run_team_family_fit_set"),
            models.Index(fields=["team", "n_params"], name="run_team_n_params"),
            models.Index(fields=["team", "n_tokens"], name="run_team_n_tokens"),
            models.Index(fields=["team", "final_loss"], name="run_team_final_loss"),
        ]

    def __str__(self) -> str:
        label = self.name or self.external_id or f"run {self.pk}"
        return f"{label} ({self.family})"


class Evaluation(models.Model):
    """The loss of a run's final weights after post-training quantization to fewer bits."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="evaluations")
    post_train_bits = models.FloatField()
    method = models.CharField(max_length=50, default="rtn")  # rtn, gptq, awq, ...
    loss = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run_id", "-post_train_bits", "method"]
        constraints = [
            models.UniqueConstraint(fields=["run", "post_train_bits", "method"], name="evaluation_unique_bits_method"),
            models.CheckConstraint(
                condition=Q(post_train_bits__gte=MIN_BITS, post_train_bits__lt=MAX_BITS),
                name="evaluation_bits_in_range",
            ),
            models.CheckConstraint(condition=Q(loss__gt=0, loss__lt=MAX_LOSS), name="evaluation_loss_in_range"),
            models.CheckConstraint(condition=~Q(method=""), name="evaluation_method_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.post_train_bits:g}-bit {self.method}: {self.loss:.4f}"


# A run's metric history is bounded: 100,000 points is a 100k-step run logging one metric every step, or
# 20k steps of five metrics. Writers refuse or drop points past it (docs/mlflow.md says which).
MAX_METRIC_POINTS_PER_RUN = 100_000


class MetricPoint(models.Model):
    """One logged value of a metric of a run at a training step (a loss curve is the points of one key).

    `value` is any float, ±Infinity included, and NULL for NaN (SQLite stores NaN as NULL, so every database
    stores it so): a diverging curve is kept as it was logged.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True, help_text="NULL is NaN.")
    step = models.BigIntegerField(default=0)
    timestamp = models.BigIntegerField(help_text="Milliseconds since the Unix epoch, as MLflow logs it.")

    class Meta:
        ordering = ["run_id", "key", "step", "timestamp", "id"]
        indexes = [models.Index(fields=["run", "key", "step", "timestamp"], name="metricpoint_run_key_step")]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}] = {self.value if self.value is not None else 'NaN'}"


class FamilyChange(models.Model):
    """A family whose runs changed and whose fits have not caught up yet: one row per (team, family).

    Every run write sets it in its own transaction, as its last statement (runs.services.family_changes_record),
    so no change is lost when the broker is down; the refit pipeline (fits.pipeline.fit_family_refresh) reads it,
    snapshots the runs and clears it. One refit message is sent per pending episode (`announced_at`).
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="family_changes")
    family = models.SlugField(max_length=100)
    changed_at = models.DateTimeField()  # the latest change: a refit waits until changes pause
    pending_since = models.DateTimeField(null=True, blank=True)  # the first change not refitted; None: caught up
    announced_at = models.DateTimeField(null=True, blank=True)  # a refit message is on its way

    class Meta:
        ordering = ["team_id", "family"]
        constraints = [models.UniqueConstraint(fields=["team", "family"], name="family_change_unique")]
        indexes = [models.Index(fields=["pending_since"], name="family_change_pending")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.family} changed {self.changed_at:%Y-%m-%d %H:%M:%S}"


class DensityReference(models.Model):
    """The 16-bit reference of a family's capacity density (runs.density): the constants of the family's current
    reference fit, written by the refit pipeline whenever that fit changes (fits.pipeline), read with the runs.

    The reference fit is the family's newest succeeded fit of the first law, in the laws' order of preference
    (fits.laws.density_reference_laws), that has one; `fit_id` names it (no foreign key: runs come before fits).
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="density_references")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20)
    fit_id = models.BigIntegerField()
    fit_version = models.PositiveIntegerField()
    constants = models.JSONField()  # runs.density.DensityConstants as a mapping: E, A, B, alpha, beta, ratio16, k

    class Meta:
        ordering = ["team_id", "family"]
        constraints = [models.UniqueConstraint(fields=["team", "family"], name="density_reference_unique")]

    def __str__(self) -> str:
        return f"{self.family}: {self.law} v{self.fit_version}"
