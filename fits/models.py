"""Fits: immutable, versioned results of one law on one family's runs, and the per-scope refit state."""

from typing import Any

import numpy as np
from django.db import models
from django.db.models import Q

from fits.laws import FitResult, law_choices
from fits.laws.curve_family import curve_laws
from fits.laws.quality import GOOD, UNUSABLE, WEAK, fit_quality


class Objective(models.TextChoices):
    """The loss a fit minimises on log-loss residuals (fits.laws.fitting.OBJECTIVES)."""

    LEAST_SQUARES = "least_squares", "Least squares"
    HUBER = "huber", "Huber (delta 1e-3)"


# New fits minimise squared residuals and leave out the runs the law cannot describe (fits.laws.screening):
# on the real sweeps that pair extrapolates best (docs/laws-engine.md, "Real sweeps"). A family may choose Huber.
DEFAULT_OBJECTIVE = Objective.LEAST_SQUARES


class FitScope(models.Model):
    """Refit state of one (team, family, law): the snapshot its last refresh saw, and the law's fit settings.

    A family's changes are recorded by runs (runs.models.FamilyChange) and taken by fits.pipeline for every law at
    once; `dirty_since` marks a change this law could not take yet because a fit of it was in flight, and
    `enqueued_at` that a refresh of it is on its way (fits.pipeline.fit_scope_refresh).
    """

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="fit_scopes")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=law_choices)  # a law of fits.laws.registry
    dirty_since = models.DateTimeField(null=True, blank=True)  # first change not taken; None when up to date
    enqueued_at = models.DateTimeField(null=True, blank=True)  # a refresh message is on its way
    fingerprint = models.CharField(max_length=64, blank=True)  # of the runs as the last refresh saw them
    # The family's fit settings for this law, set by POST /fits/; the next version uses them.
    objective = models.CharField(max_length=20, choices=Objective.choices, default=DEFAULT_OBJECTIVE)
    screen_outliers = models.BooleanField(default=True)  # leave out runs the law cannot describe

    class Meta:
        ordering = ["team_id", "family", "law"]
        constraints = [
            models.UniqueConstraint(fields=["team", "family", "law"], name="fit_scope_unique"),
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

    class Quality(models.TextChoices):
        """A succeeded fit's verdict (fits.laws.quality)."""

        GOOD = GOOD, "Good"
        WEAK = WEAK, "Weak"
        UNUSABLE = UNUSABLE, "Unusable"

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="fits")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=law_choices)  # a law of fits.laws.registry
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    objective = models.CharField(max_length=20, choices=Objective.choices, default=DEFAULT_OBJECTIVE)
    screen_outliers = models.BooleanField(default=True)  # whether the screening rule ran (fits.laws.screening)
    n_bootstrap = models.PositiveIntegerField(default=200)
    chunk_size = models.PositiveIntegerField(default=25)
    # The data: which runs, in what state (the fingerprint).
    run_ids = models.JSONField(default=list)
    snapshot = models.BinaryField(null=True, blank=True)  # the exact arrays fitted (npz; fits.selectors.FitData)
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
    # Runs the screening rule left out: {"run_id", "n_params", "n_tokens", "final_loss", "residual", "robust_z",
    # "check", "reason"}; empty when none was (or before the rule existed).
    screened = models.JSONField(default=list)
    # The fit's verdict (fits.laws.quality), computed when it is published: good, weak or unusable, with the
    # reasons; "" for a fit without one (not finished; succeeded fits stored before verdicts got theirs from the
    # data migration 0007, on the numbers they had).
    quality = models.CharField(max_length=10, blank=True, default="", choices=Quality.choices)
    quality_reasons = models.JSONField(default=list, blank=True)
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

    @property
    def is_unusable(self) -> bool:
        """The verdict says no answer may rest on this fit (fits.laws.quality)."""
        return self.quality == Fit.Quality.UNUSABLE

    def draws_array(self) -> np.ndarray:
        """The bootstrap draws as an array of shape (n_draws, len(draw_names))."""
        if not self.draws:
            return np.zeros((0, len(self.draw_names)))
        return np.frombuffer(bytes(self.draws), dtype=np.float64).reshape(-1, len(self.draw_names))

    def as_result(self, *, with_draws: bool = True) -> FitResult:
        """The stored fit as the law engine's FitResult, for predictions and plans; without the draws (an empty
        array, and the draws column need not have been read) for checks that only read the parameters."""
        return FitResult(
            law=self.law,
            objective=self.objective,
            params=dict(self.params),
            intervals={k: (v[0], v[1]) for k, v in self.intervals.items()},
            fixed=dict(self.fixed),
            metrics=dict(self.metrics),
            backtest=dict(self.backtest),
            warnings=list(self.warnings),
            draws=self.draws_array() if with_draws else np.zeros((0, len(self.draw_names))),
            draw_names=list(self.draw_names),
            data_range=dict(self.data_range),
            screened=[dict(entry) for entry in self.screened],
        )

    @staticmethod
    def result_fields(result: FitResult, *, run_ids: list[int] | None = None) -> dict[str, Any]:
        """The columns that store a FitResult: the inverse of as_result(), plus the fit's verdict
        (fits.laws.quality, computed here from the result's own numbers). With the fitted runs' ids (in the
        order of the Observations), each screened run also names its run id."""
        screened = [dict(entry) for entry in result.screened]
        if run_ids is not None:
            for entry in screened:
                index = entry.get("index")
                if isinstance(index, int) and 0 <= index < len(run_ids):
                    entry["run_id"] = run_ids[index]
        quality = fit_quality(result)
        return {
            "quality": quality.level,
            "quality_reasons": list(quality.reasons),
            "screened": screened,
            "params": result.params,
            "intervals": {k: [v[0], v[1]] for k, v in result.intervals.items()},
            "fixed": result.fixed,
            "metrics": result.metrics,
            "backtest": result.backtest,
            "warnings": result.warnings,
            "data_range": result.data_range,
            "draw_names": result.draw_names,
            "draws": np.ascontiguousarray(result.draws, dtype=np.float64).tobytes(),
        }


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


# Curve laws fitted to a family's training curves (docs/curves.md, "Stored curve fits") ----------------------------

curve_law_choices = [(law, law) for law in curve_laws()]


class CurveScope(models.Model):
    """Curve-refit state of one (team, family): whether its loss or lr histories (or its runs) changed since its
    curve fits last caught up, and whether a refresh message is on its way (fits.curve_pipeline).

    Marked in the same transaction that takes the family's change (fits.pipeline.fit_family_refresh), so nothing is
    lost when the broker or a worker dies: the beat's sweep re-sends a refresh for a dirty scope whose message is
    late. `changed_at` is the latest mark: a refresh clears the scope only if no mark came while it computed.
    """

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="curve_scopes")
    family = models.SlugField(max_length=100)
    dirty_since = models.DateTimeField(null=True, blank=True)  # first change not taken; None when up to date
    changed_at = models.DateTimeField(null=True, blank=True)  # the latest change
    enqueued_at = models.DateTimeField(null=True, blank=True)  # a refresh message is on its way

    class Meta:
        ordering = ["team_id", "family"]
        constraints = [models.UniqueConstraint(fields=["team", "family"], name="curve_scope_unique")]
        indexes = [models.Index(fields=["dirty_since"], name="curve_scope_dirty")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.family} (curves)"


class FamilyCurveFit(models.Model):
    """One version of one curve law fitted to one family's training curves (loss and lr histories): L0, A, alpha
    per model size, the annealing parameters shared by every run and size; never changed once finished."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    team = models.ForeignKey("runs.Team", on_delete=models.CASCADE, related_name="curve_fits")
    family = models.SlugField(max_length=100)
    law = models.CharField(max_length=20, choices=curve_law_choices)  # a law of fits.laws.curves.CURVE_LAWS
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)  # why a failed version failed
    # The data: the loss metric read, which runs, and their histories' fingerprint (an unchanged family is not
    # refitted).
    loss_key = models.CharField(max_length=250, blank=True)
    run_ids = models.JSONField(default=list)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=50, blank=True)
    # The result (fits.laws.curve_family.FamilyCurveResult; docs/api.md, "Curve fits").
    params = models.JSONField(default=dict)
    intervals = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    run_metrics = models.JSONField(default=dict)
    heldout = models.JSONField(default=dict)
    warnings = models.JSONField(default=list)
    left_out = models.JSONField(default=dict)
    attempt = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "family", "law", "version"], name="curve_fit_version_unique"),
            models.UniqueConstraint(
                fields=["team", "family", "law"],
                condition=Q(status__in=["queued", "running"]),
                name="curve_fit_one_active_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]), name="curve_fit_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["team", "family", "law", "-version"], name="curve_fit_scope_latest"),
            models.Index(fields=["status", "heartbeat_at"], name="curve_fit_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.family}/{self.law} curves v{self.version} ({self.status})"
