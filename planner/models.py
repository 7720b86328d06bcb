"""Plans: one stored answer of the planner for a compute budget, with the fit version it was answered from."""

from django.db import models
from django.db.models import F, Q

from fits.laws import DEFAULT_LAW, law_choices

# A plan request's `law`: a law, or "auto": the best-ranked law of the family that can serve the request
# (fits.ranking, planner.services.plan_law_resolve).
AUTO_LAW = "auto"


def plan_law_choices() -> list[tuple[str, str]]:
    """What a plan request may name: "auto" or a law of fits.laws.registry."""
    return [(AUTO_LAW, "Auto (best-ranked law)"), *law_choices()]


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
    law = models.CharField(max_length=20, choices=law_choices, default=DEFAULT_LAW)  # the law actually used
    # What was asked: "auto" (the best-ranked law that can serve the request) or a law; plan_rerun asks it again.
    requested_law = models.CharField(max_length=20, choices=plan_law_choices, default=AUTO_LAW)
    # How the law was chosen: {"requested", "used", "reason", "ranking": [...]}; None on plans made before.
    law_selection = models.JSONField(null=True, blank=True)
    fit = models.ForeignKey("fits.Fit", on_delete=models.RESTRICT, related_name="plans")
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
        return f"plan {self.pk}: {self.family}/{self.law} at {self.budget_flops:.3g} FLOPs".replace("e+", "e")
