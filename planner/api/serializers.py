"""Serializers of the fits and predict API."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from planner.allocation import HARDWARE_PROFILES, MAX_BIT_CONFIGURATIONS, get_hardware
from planner.models import AUTO_LAW, PLAN_LAW_CHOICES, Fit, Law, Plan
from runs.api.fields import FiniteFloatField, StrictBooleanField, StrictCharField, StrictIntegerField
from runs.api.serializers import StrictFieldsMixin, bits_field, slug_validator
from runs.models import MAX_N_PARAMS, MAX_N_TOKENS


class FitSerializer(serializers.ModelSerializer[Fit]):
    """A fit version as the contract lists it (docs/api.md, Fits); draws are not part of the JSON."""

    n_draws = serializers.SerializerMethodField()
    n_runs = serializers.SerializerMethodField()

    class Meta:
        model = Fit
        fields = [
            "id",
            "family",
            "law",
            "version",
            "status",
            "params",
            "intervals",
            "fixed",
            "metrics",
            "backtest",
            "warnings",
            "error",
            "data_fingerprint",
            "objective",
            "n_runs",
            "n_draws",
            "code_version",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_n_draws(self, fit: Fit) -> int:
        return int(fit.metrics.get("n_draws", 0)) if fit.status == Fit.Status.SUCCEEDED else 0

    def get_n_runs(self, fit: Fit) -> int:
        return len(fit.run_ids)


class CurrentFitSerializer(FitSerializer):
    """The current fit, with whether runs changed since (`stale`) and whether a newer fit is in flight."""

    stale = serializers.BooleanField()
    pending = serializers.SerializerMethodField()

    class Meta(FitSerializer.Meta):
        fields = [*FitSerializer.Meta.fields, "stale", "pending"]
        read_only_fields = fields

    def get_pending(self, fit: Fit) -> dict[str, Any] | None:
        pending: Fit | None = self.context.get("pending")
        if pending is None:
            return None
        return {"id": pending.pk, "version": pending.version, "status": pending.status}


class FitScopeQuerySerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """`family` and `law` of a fit request or query."""

    family = serializers.CharField(max_length=100, validators=[slug_validator])
    law = serializers.ChoiceField(choices=Law.choices, default=Law.PRECISION)


class PredictQuerySerializer(FitScopeQuerySerializer):
    """Query of GET /api/v1/predict/."""

    n_params = StrictIntegerField(min_value=1, max_value=MAX_N_PARAMS)
    n_tokens = StrictIntegerField(min_value=1, max_value=MAX_N_TOKENS)
    weight_bits = bits_field(default=16.0)
    activation_bits = bits_field(default=16.0)
    kv_bits = bits_field(default=16.0)
    post_train_bits = FiniteFloatField(required=False, allow_null=True, above=0.0, below=32.0)
    exponent_bits = StrictIntegerField(
        required=False, min_value=1, max_value=8, help_text="fp law: the format's exponent bits (with mantissa_bits)."
    )
    mantissa_bits = StrictIntegerField(
        required=False, min_value=0, max_value=23, help_text="fp law: the format's mantissa bits (with exponent_bits)."
    )

    def to_internal_value(self, data: Any) -> Any:
        # Query strings are text: turn the numeric parameters into numbers before the strict fields see them.
        integers = {"n_params", "n_tokens", "exponent_bits", "mantissa_bits"}
        numeric = {"weight_bits", "activation_bits", "kv_bits", "post_train_bits", *integers}
        converted = {}
        errors = {}
        for key, value in data.items():
            if key in numeric:
                try:
                    number = float(value)
                    converted[key] = int(number) if key in integers and number.is_integer() else number
                except (TypeError, ValueError):
                    errors[key] = ["A number is required."]
            else:
                converted[key] = value
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(converted)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        post = attrs.get("post_train_bits")
        if post is not None and post >= attrs["weight_bits"]:
            raise serializers.ValidationError({"post_train_bits": ["Must be below weight_bits."]})
        for key, other in (("exponent_bits", "mantissa_bits"), ("mantissa_bits", "exponent_bits")):
            if key in attrs and other not in attrs:
                raise serializers.ValidationError({other: ["Give exponent_bits and mantissa_bits together."]})
        return attrs


class PredictionSerializer(serializers.Serializer[Any]):
    loss = serializers.FloatField()
    interval = serializers.ListField(child=serializers.FloatField(allow_null=True))
    fit_id = serializers.IntegerField()
    extrapolation = serializers.DictField()


class LawRankingQuerySerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Query of GET /api/v1/fits/ranking/."""

    family = serializers.CharField(max_length=100, validators=[slug_validator])


class RankedLawSerializer(serializers.Serializer[Any]):
    """One law's current fit in the ranking (planner.ranking.RankedLaw)."""

    law = serializers.CharField()
    fit_id = serializers.IntegerField()
    version = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True, help_text="Backtest rmse_log_runs; lower is better.")
    n_held_out_runs = serializers.IntegerField(allow_null=True)
    n_params_fitted = serializers.IntegerField()
    n_runs = serializers.IntegerField(allow_null=True)
    ranked = serializers.BooleanField()
    eligible = serializers.BooleanField(help_text="May be the best law: ranked and covering as many runs as the rest.")
    reason = serializers.CharField(allow_null=True, help_text="Why unranked or not eligible; null otherwise.")
    rank = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField()


class LawRankingSerializer(serializers.Serializer[Any]):
    """Response of GET /api/v1/fits/ranking/: the family's laws by backtest error, best first."""

    family = serializers.CharField()
    best = serializers.CharField(allow_null=True)
    ranking = RankedLawSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField(), help_text="What weakens the choice of `best`.")


# Plans ---------------------------------------------------------------------------------------------------

MAX_BUDGET_FLOPS = 1e35  # far above any plan the laws can speak to; keeps the arithmetic finite
MAX_BITS_CHOICES = 512


class PlanBudgetSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """{"flops": C} (6*N*D at 16 bits) or {"gpu_hours": H, "hardware": "h100", "mfu": m (optional)}."""

    flops = FiniteFloatField(required=False, above=0.0, max_value=MAX_BUDGET_FLOPS)
    gpu_hours = FiniteFloatField(required=False, above=0.0, max_value=1e15)
    hardware = StrictCharField(required=False, max_length=20)
    mfu = FiniteFloatField(required=False, above=0.0, max_value=1.0)

    def validate_hardware(self, value: str) -> str:
        try:
            return get_hardware(value).name
        except ValueError:
            raise serializers.ValidationError(
                f"Unknown hardware {value!r}; known: {', '.join(sorted(HARDWARE_PROFILES))}."
            ) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("flops" in attrs) == ("gpu_hours" in attrs):
            raise serializers.ValidationError("Give exactly one of flops or gpu_hours.")
        if "gpu_hours" in attrs and "hardware" not in attrs:
            raise serializers.ValidationError({"hardware": ["Required with gpu_hours."]})
        if "mfu" in attrs and "gpu_hours" not in attrs:
            raise serializers.ValidationError({"mfu": ["Only applies to a gpu_hours budget."]})
        return attrs


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


@extend_schema_field(
    {
        # Inline under allOf: drf-spectacular's enum hook would otherwise name this choice set after the field,
        # "law", which already names the set of laws (Fit.law), and warn about the collision.
        "allOf": [{"type": "string", "enum": [value for value, _ in PLAN_LAW_CHOICES]}],
        "default": AUTO_LAW,
        "description": "auto (the default): the best-ranked law that can serve the request; or a law.",
    }
)
class PlanLawField(serializers.ChoiceField):
    """A plan request's `law`: "auto" (the default) or a law."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=PLAN_LAW_CHOICES, default=AUTO_LAW, **kwargs)


class PlanCreateInputSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Body of POST /api/v1/plans/."""

    family = StrictCharField(max_length=100, validators=[slug_validator])
    law = PlanLawField()  # docs/api.md, Plans: "auto" by default
    budget = PlanBudgetSerializer()
    constraints = PlanConstraintsSerializer(required=False)
    cost_model = serializers.ChoiceField(choices=Plan.CostModel.choices, default=Plan.CostModel.LINEAR_BITS)


class SuggestionsInputSerializer(PlanCreateInputSerializer):
    """Body of POST /api/v1/suggestions/: a plan request plus the budget for new experiments."""

    experiment_budget = PlanBudgetSerializer()
    max_suggestions = StrictIntegerField(required=False, default=3, min_value=1, max_value=10)


class CompactRankedLawSerializer(serializers.Serializer[Any]):
    law = serializers.CharField()
    fit_id = serializers.IntegerField()
    version = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
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


class PlanFitSerializer(serializers.ModelSerializer[Fit]):
    class Meta:
        model = Fit
        fields = ["id", "law", "version"]
        read_only_fields = fields


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
