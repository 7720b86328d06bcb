"""Fits: immutable, versioned results of one law on one family's runs; the per-scope refit state."""

import numpy as np
from django.db import models
from django.db.models import F, Q

from planner.laws import FitResult


class Law(models.TextChoices):
    """The laws the fitter knows (docs/api.md, Fits)."""

    CHINCHILLA = "chinchilla", "Chinchilla"
    PRECISION = "precision", "Precision (Kumar et al.)"
    FP = "fp", "Floating point (Sun et al.)"


class FitScope(models.Model):
    """Refit bookkeeping of one (team, family, law): has the data changed since the last fit was asked for?

    Writers bump `generation` and set `dirty_since` in the transaction that changes the runs; a refit takes a
    snapshot and clears the dirty flag only if no change landed meanwhile. `enqueued_at` makes one message per
    dirty episode, so a sweep of 500 posted runs sends one refit, not 500.
    """

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="fit_scopes")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=Law.choices)
    generation = models.PositiveBigIntegerField(default=0)  # +1 for every change to the family's runs
    dirty_since = models.DateTimeField(null=True, blank=True)  # first unfitted change; None when up to date
    last_change_at = models.DateTimeField(null=True, blank=True)  # debounce: wait until changes pause
    enqueued_at = models.DateTimeField(null=True, blank=True)  # a refit message is on its way
    fingerprint = models.CharField(max_length=64, blank=True)  # of the runs as the last refresh saw them

    class Meta:
        ordering = ["team_id", "family", "law"]
        constraints = [
            models.UniqueConstraint(fields=["team", "family", "law"], name="fit_scope_unique"),
            models.CheckConstraint(condition=Q(law__in=["chinchilla", "precision", "fp"]), name="fit_scope_law_valid"),
        ]
        indexes = [models.Index(fields=["dirty_since"], name="fit_scope_dirty")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.family}/{self.law}"


class FitQuerySet(models.QuerySet["Fit"]):
    """Fit lookups that recur: without the binary columns, and the versions still in flight."""

    def without_blobs(self) -> "FitQuerySet":
        """Leave out draws, snapshot and point state (megabytes for large families): lists need none of them."""
        return self.defer("draws", "point_state", "snapshot")

    def in_flight(self) -> "FitQuerySet":
        """Versions queued or running: at most one per (team, family, law)."""
        return self.filter(status__in=["queued", "running"])


class Fit(models.Model):
    """One version of one law fitted to one family's finished, non-excluded runs; never changed once finished."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="fits")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=Law.choices)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    objective = models.CharField(max_length=20, default="huber")
    n_bootstrap = models.PositiveIntegerField(default=200)
    chunk_size = models.PositiveIntegerField(default=25)
    # The data: which runs, in what state (the fingerprint).
    run_ids = models.JSONField(default=list)
    snapshot = models.BinaryField(null=True, blank=True)  # the exact arrays fitted (npz; planner.selectors.FitData)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=50, blank=True)
    # The result (docs/api.md, Fits).
    params = models.JSONField(default=dict)
    intervals = models.JSONField(default=dict)
    fixed = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    backtest = models.JSONField(default=dict)
    warnings = models.JSONField(default=list)
    data_range = models.JSONField(default=dict)
    draw_names = models.JSONField(default=list)
    draws = models.BinaryField(null=True, blank=True)  # float64, shape (n_bootstrap, len(draw_names)), C order
    error = models.TextField(blank=True)
    # Work in progress: the pickled point fit the bootstrap chunks start from; cleared when the fit finishes.
    point_state = models.BinaryField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = FitQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "family", "law", "version"], name="fit_version_unique"),
            # At most one fit in flight per scope: the next version starts once this one is done.
            models.UniqueConstraint(
                fields=["team", "family", "law"],
                condition=Q(status__in=["queued", "running"]),
                name="fit_one_active_per_scope",
            ),
            models.CheckConstraint(condition=Q(law__in=["chinchilla", "precision", "fp"]), name="fit_law_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]), name="fit_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["team", "family", "law", "-version"], name="fit_scope_latest"),
            models.Index(fields=["status", "heartbeat_at"], name="fit_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.family}/{self.law} v{self.version} ({self.status})"

    def draws_array(self) -> np.ndarray:
        """The bootstrap draws as an array of shape (n_draws, len(draw_names))."""
        if not self.draws:
            return np.zeros((0, len(self.draw_names)))
        return np.frombuffer(bytes(self.draws), dtype=np.float64).reshape(-1, len(self.draw_names))

    def as_result(self) -> FitResult:
        """The stored fit as the law engine's FitResult, for predictions and plans."""
        return FitResult(
            law=self.law,
            objective=self.objective,
            params=dict(self.params),
            intervals={k: (v[0], v[1]) for k, v in self.intervals.items()},
            fixed=dict(self.fixed),
            metrics=dict(self.metrics),
            backtest=dict(self.backtest),
            warnings=list(self.warnings),
            draws=self.draws_array(),
            draw_names=list(self.draw_names),
            data_range=dict(self.data_range),
        )


class FitChunk(models.Model):
    """Bootstrap draws start .. start+count-1 of a fit, computed by one worker task."""

    fit = models.ForeignKey(Fit, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    draws = models.BinaryField()  # float64, shape (count, len(fit.draw_names))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fit_id", "index"]
        constraints = [models.UniqueConstraint(fields=["fit", "index"], name="fit_chunk_unique")]

    def __str__(self) -> str:
        return f"chunk {self.index} of fit {self.fit_id}"


# A plan request's `law`: a law, or "auto": the best-ranked law of the family that can serve the request
# (planner.ranking, planner.services.plan_law_resolve).
AUTO_LAW = "auto"
PLAN_LAW_CHOICES = [(AUTO_LAW, "Auto (best-ranked law)"), *Law.choices]


class Plan(models.Model):
    """One planner answer: the inputs as asked, the fit version they were answered from, and the stored outputs.

    Plans are immutable records (docs/api.md, Plans): a rerun on a newer fit is a new Plan (`plan_rerun`). The fit
    is kept with RESTRICT: a fit cited by a plan cannot be deleted on its own (the plan would lose its provenance),
    while deleting the team removes both.
    """

    class CostModel(models.TextChoices):
        LINEAR_BITS = "linear_bits", "Linear in bits (Kumar et al.)"
        HARDWARE = "hardware", "Hardware native formats"

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="plans")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=Law.choices, default=Law.PRECISION)  # the law actually used
    # What was asked: "auto" (the best-ranked law that can serve the request) or a law; plan_rerun asks it again.
    requested_law = models.CharField(max_length=20, choices=PLAN_LAW_CHOICES, default=AUTO_LAW)
    # How the law was chosen: {"requested", "used", "reason", "ranking": [...]}; None on plans made before.
    law_selection = models.JSONField(null=True, blank=True)
    fit = models.ForeignKey(Fit, on_delete=models.RESTRICT, related_name="plans")
    # Inputs, as asked (normalised: only the keys given).
    budget = models.JSONField(default=dict)  # {"flops": C} or {"gpu_hours": H, "hardware": "h100", "mfu"?: m}
    constraints = models.JSONField(default=dict)
    cost_model = models.CharField(max_length=20, choices=CostModel.choices, default=CostModel.LINEAR_BITS)
    hardware = models.CharField(max_length=20, blank=True)  # resolved profile name; "" when none was used
    budget_flops = models.FloatField()  # 16-bit-equivalent model FLOPs (6*N*D at 16 bits)
    # Outputs.
    recommendation = models.JSONField(default=dict)
    baseline = models.JSONField(null=True, blank=True)  # None when no 16-bit configuration satisfies the constraints
    alternatives = models.JSONField(default=list)
    optimum_spread = models.JSONField(null=True, blank=True)  # None when the fit has fewer than 2 finite draws
    warnings = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(law__in=["chinchilla", "precision", "fp"]), name="plan_law_valid"),
            models.CheckConstraint(
                condition=Q(cost_model__in=["linear_bits", "hardware"]), name="plan_cost_model_valid"
            ),
            models.CheckConstraint(condition=Q(budget_flops__gt=0), name="plan_budget_positive"),
            # An explicit request is answered with that law, never another.
            models.CheckConstraint(
                condition=Q(requested_law=AUTO_LAW) | Q(requested_law=F("law")), name="plan_requested_law_valid"
            ),
        ]
        indexes = [models.Index(fields=["team", "family", "-created_at"], name="plan_team_family_recent")]

    def __str__(self) -> str:
        return f"plan {self.pk}: {self.family}/{self.law} at {self.budget_flops:.3g} FLOPs"
