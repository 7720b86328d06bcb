"""Serializers of the plans and suggestions API."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apikit.fields import FiniteFloatField, StrictBooleanField, StrictCharField, StrictIntegerField, slug_validator
from apikit.serializers import StrictFieldsMixin
from fits.json_numbers import finite_or_none
from fits.models import Fit
from planner.allocation import MAX_BIT_CONFIGURATIONS
from planner.errors import PlanInvalid
from planner.models import Plan, plan_law_choices
from planner.requests import AUTO_LAW, ConstraintsRequest, PlanRequest, budget_from
from planner.search import config_position
from planner.services import config_json
from planner.suggestion_services import Suggestions
from runs.api.serializers import bits_field
from runs.models import MAX_N_PARAMS, MAX_N_TOKENS

MAX_BUDGET_FLOPS = 1e35  # far above any plan the laws can speak to; keeps the arithmetic finite
MAX_BITS_CHOICES = 512


class PlanBudgetSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """{"flops": C} (6*N*D at 16 bits) or {"gpu_hours": H, "hardware": "h100", "mfu": m (optional)}."""

    flops = FiniteFloatField(required=False, above=0.0, max_value=MAX_BUDGET_FLOPS)
    gpu_hours = FiniteFloatField(required=False, above=0.0, max_value=1e15)
    hardware = StrictCharField(required=False, max_length=20)
    mfu = FiniteFloatField(required=False, above=0.0, max_value=1.0)

    def validate(self, attrs: dict[str, Any]) -> Any:
        """The validated Budget (planner.requests.budget_from holds the budget rules; errors in this shape)."""
        try:
            return budget_from(attrs)
        except PlanInvalid as exc:
            raise serializers.ValidationError(exc.errors.get("budget", exc.errors)) from exc


class PlanConstraintsSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """The contract's plan constraints, all optional; `tie_bits` is an extension (weight = activation = KV)."""

    n_params = StrictIntegerField(required=False, min_value=1, max_value=MAX_N_PARAMS)
    n_params_max = StrictIntegerField(required=False, min_value=1, max_value=MAX_N_PARAMS)
    n_tokens_max = StrictIntegerField(required=False, min_value=1, max_value=MAX_N_TOKENS)
    weight_bits = bits_field(required=False)
    activation_bits = bits_field(required=False)
    kv_bits = bits_field(required=False)
    bits_choices = serializers.ListField(child=bits_field(), required=False, min_length=1, max_length=MAX_BITS_CHOICES)
    post_train_bits = bits_field(required=False)
    weights_memory_max_bytes = FiniteFloatField(required=False, above=0.0, max_value=1e16)
    tie_bits = StrictBooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        n, n_max = attrs.get("n_params"), attrs.get("n_params_max")
        if n is not None and n_max is not None and n > n_max:
            raise serializers.ValidationError({"n_params": ["Must not exceed n_params_max."]})
        if "bits_choices" in attrs and not attrs.get("tie_bits"):
            # Untied, every (weight, activation, KV) combination is searched: bound it before any work.
            free = sum(1 for key in ("weight_bits", "activation_bits", "kv_bits") if attrs.get(key) is None)
            count = len(set(attrs["bits_choices"])) ** free
            if count > MAX_BIT_CONFIGURATIONS:
                raise serializers.ValidationError(
                    {
                        "bits_choices": [
                            f"{count} untied bit configurations; at most {MAX_BIT_CONFIGURATIONS}: "
                            "give fewer widths, fix some bits, or set tie_bits."
                        ]
                    }
                )
        return attrs

    def constraints(self) -> ConstraintsRequest:
        """The validated constraints as the planner takes them."""
        return ConstraintsRequest.from_json(self.validated_data)


def _constraints(attrs: dict[str, Any] | None) -> ConstraintsRequest:
    try:
        return ConstraintsRequest.from_json(attrs)
    except PlanInvalid as exc:
        raise serializers.ValidationError(exc.errors) from exc


@extend_schema_field(
    {
        # Inline under allOf: drf-spectacular's enum hook would otherwise name this choice set after the field,
        # "law", which already names the set of laws (Fit.law), and warn about the collision.
        "allOf": [{"type": "string", "enum": [value for value, _ in plan_law_choices()]}],
        "default": AUTO_LAW,
        "description": "auto (the default): the best-ranked law that can serve the request; or a law.",
    }
)
class PlanLawField(serializers.ChoiceField):
    """A plan request's `law`: "auto" (the default) or a law."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=plan_law_choices(), default=AUTO_LAW, **kwargs)


class PlanCreateInputSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Body of POST /api/v1/plans/."""

    family = StrictCharField(max_length=100, validators=[slug_validator])
    law = PlanLawField()  # docs/api.md, Plans: "auto" by default
    budget = PlanBudgetSerializer()
    constraints = PlanConstraintsSerializer(required=False)
    cost_model = serializers.ChoiceField(choices=Plan.CostModel.choices, default=Plan.CostModel.LINEAR_BITS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """{"request": the PlanRequest, built once from the validated body, ...the other fields}."""
        request = PlanRequest(
            family=attrs.pop("family"),
            budget=attrs.pop("budget"),
            constraints=_constraints(attrs.pop("constraints", None)),
            law=attrs.pop("law"),
            cost_model=attrs.pop("cost_model"),
        )
        return {"request": request, **attrs}


class SuggestionsInputSerializer(PlanCreateInputSerializer):
    """Body of POST /api/v1/suggestions/: a plan request plus the budget for new experiments."""

    experiment_budget = PlanBudgetSerializer()
    max_suggestions = StrictIntegerField(required=False, default=3, min_value=1, max_value=10)


class CompactRankedLawSerializer(serializers.Serializer[Any]):
    law = serializers.CharField()
    fit_id = serializers.IntegerField()
    version = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    scheme = serializers.CharField(
        allow_null=True, help_text="The backtest's held-out runs: largest_n or largest_compute; null when unranked."
    )
    n_held_out_runs = serializers.IntegerField(allow_null=True, help_text="How many runs the score was measured on.")
    rank = serializers.IntegerField(allow_null=True)
    eligible = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)


class LawSelectionSerializer(serializers.Serializer[Any]):
    """How the law of a plan was chosen: asked for ("auto" or a law), used, why, and the ranking it read."""

    requested = serializers.CharField()
    used = serializers.CharField()
    reason = serializers.CharField()
    ranking = CompactRankedLawSerializer(many=True)


class SuggestedRunSerializer(serializers.Serializer[Any]):
    rank = serializers.IntegerField()
    n_params = serializers.IntegerField()
    n_tokens = serializers.IntegerField()
    tokens_per_param = serializers.FloatField()
    weight_bits = serializers.FloatField()
    activation_bits = serializers.FloatField()
    kv_bits = serializers.FloatField()
    exponent_bits = serializers.FloatField(required=False, help_text="fp law only: the format to train in (E).")
    mantissa_bits = serializers.FloatField(required=False, help_text="fp law only: the format to train in (M).")
    cost_flops = serializers.FloatField()
    predicted_loss = serializers.FloatField(allow_null=True)
    predicted_loss_interval = serializers.ListField(child=serializers.FloatField(allow_null=True))
    target_variance_reduction = serializers.FloatField(allow_null=True)
    expected_target_interval_width = serializers.FloatField(allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        rank, suggestion, law, params = instance
        return {
            "rank": rank,
            "n_params": suggestion.n_params,
            "n_tokens": suggestion.n_tokens,
            "tokens_per_param": suggestion.n_tokens / suggestion.n_params,
            "weight_bits": suggestion.weight_bits,
            "activation_bits": suggestion.activation_bits,
            "kv_bits": suggestion.kv_bits,
            **law.deployment_format(params, suggestion.weight_bits),
            "cost_flops": suggestion.cost_flops,
            "predicted_loss": finite_or_none(suggestion.predicted_loss),
            "predicted_loss_interval": [finite_or_none(v) for v in suggestion.predicted_loss_interval],
            "target_variance_reduction": finite_or_none(suggestion.variance_reduction),
            "expected_target_interval_width": finite_or_none(suggestion.target_interval_width_after),
        }


class SuggestionsSerializer(serializers.Serializer[Any]):
    """Response of POST /api/v1/suggestions/ (docs/api.md, Suggestions); nothing is stored."""

    family = serializers.CharField()
    law = serializers.CharField()
    fit = serializers.DictField()
    budget = serializers.DictField()
    budget_flops = serializers.FloatField()
    constraints = serializers.DictField()
    cost_model = serializers.CharField()
    hardware = serializers.CharField(allow_blank=True)
    experiment_budget = serializers.DictField()
    experiment_budget_flops = serializers.FloatField()
    target = serializers.DictField()
    target_loss_interval = serializers.ListField(child=serializers.FloatField(allow_null=True))
    expected_target_loss_interval = serializers.ListField(child=serializers.FloatField(allow_null=True))
    expected_narrowing = serializers.FloatField(allow_null=True)
    total_cost_flops = serializers.FloatField()
    noise_rel = serializers.FloatField()
    n_draws = serializers.IntegerField()
    n_candidates = serializers.IntegerField()
    selection = serializers.CharField()
    suggestions = SuggestedRunSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())
    law_selection = LawSelectionSerializer()
    data_range = serializers.DictField(
        help_text="Extension: where the target (the plan's recommendation) sits against the fit's runs, per axis, "
        "as plans give it."
    )

    def to_representation(self, instance: Suggestions) -> dict[str, Any]:
        request, search, ranked = instance.request, instance.search, instance.ranked
        params = search.result.all_params
        runs = [(i + 1, s, search.law, params) for i, s in enumerate(ranked.suggestions)]
        return {
            "family": request.family,
            "law": search.fit.law,
            "fit": {"id": search.fit.pk, "version": search.fit.version},
            "budget": request.budget.as_json(),
            "budget_flops": request.budget.flops,
            "constraints": request.constraints.as_json(),
            "cost_model": request.cost_model,
            "hardware": search.planned.hardware or "",
            "experiment_budget": instance.experiment_budget.as_json(),
            "experiment_budget_flops": instance.experiment_budget.flops,
            "target": config_json(search.planned.recommendation, search.law, params),
            "target_loss_interval": [finite_or_none(v) for v in ranked.target_interval_before],
            "expected_target_loss_interval": [finite_or_none(v) for v in ranked.target_interval_after],
            "expected_narrowing": finite_or_none(instance.expected_narrowing),
            "total_cost_flops": ranked.total_cost_flops,
            "noise_rel": ranked.noise_rel,
            "n_draws": ranked.n_draws,
            "n_candidates": ranked.n_candidates,
            "selection": ranked.strategy,
            "suggestions": SuggestedRunSerializer(runs, many=True).data,
            "warnings": list(instance.warnings),
            "law_selection": LawSelectionSerializer(instance.selection.as_json()).data,
            "data_range": config_position(search.result, search.planned.recommendation),
        }


class PlanFitSerializer(serializers.ModelSerializer[Fit]):
    quality = serializers.SerializerMethodField(
        help_text="Extension: the fit's verdict (good, weak); null without one."
    )

    class Meta:
        model = Fit
        fields = ["id", "law", "version", "quality"]
        read_only_fields = fields

    def get_quality(self, fit: Fit) -> str | None:
        return fit.quality or None


# PostgreSQL's jsonb stores 1e21 as the numeric 1000000000000000000000, which reads back as an int: these keys
# are floats in the contract whatever the database did to them.
PLAN_FLOAT_KEYS = frozenset(
    {
        "tokens_per_param",
        "weight_bits",
        "activation_bits",
        "kv_bits",
        "post_train_bits",
        "predicted_loss",
        "compute_flops",
        "weights_memory_bytes",
    }
)


def _plan_config(config: Any) -> Any:
    if not isinstance(config, dict):
        return config
    return {k: float(v) if k in PLAN_FLOAT_KEYS and isinstance(v, int) else v for k, v in config.items()}


class PlanSerializer(serializers.ModelSerializer[Plan]):
    """A stored plan as the contract lists it (docs/api.md, Plans), with the 16-bit baseline's loss gap."""

    def to_representation(self, instance: Plan) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["recommendation"] = _plan_config(data["recommendation"])
        data["baseline"] = _plan_config(data["baseline"])
        data["alternatives"] = [_plan_config(a) for a in data["alternatives"] or []]
        return data

    fit = PlanFitSerializer(read_only=True)
    loss_improvement_over_baseline = serializers.SerializerMethodField()
    law_selection = LawSelectionSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Plan
        fields = [
            "id",
            "family",
            "law",
            "requested_law",
            "law_selection",
            "budget",
            "constraints",
            "cost_model",
            "hardware",
            "budget_flops",
            "recommendation",
            "baseline",
            "loss_improvement_over_baseline",
            "alternatives",
            "optimum_spread",
            "precision_choice",
            "data_range",
            "fit",
            "warnings",
            "created_at",
        ]
        read_only_fields = fields

    def get_loss_improvement_over_baseline(self, plan: Plan) -> float | None:
        """Baseline loss minus the recommendation's: positive when the recommended bits beat 16-bit training."""
        base = (plan.baseline or {}).get("predicted_loss")
        rec = (plan.recommendation or {}).get("predicted_loss")
        return None if base is None or rec is None else float(base) - float(rec)
