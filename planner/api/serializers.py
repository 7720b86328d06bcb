"""Serializers of the fits and predict API."""

from typing import Any

from rest_framework import serializers

from planner.models import Fit, Law
from runs.api.fields import FiniteFloatField, StrictIntegerField
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

    def to_internal_value(self, data: Any) -> Any:
        # Query strings are text: turn the numeric parameters into numbers before the strict fields see them.
        numeric = {"n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "post_train_bits"}
        converted = {}
        errors = {}
        for key, value in data.items():
            if key in numeric:
                try:
                    number = float(value)
                    converted[key] = int(number) if key in {"n_params", "n_tokens"} and number.is_integer() else number
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
        return attrs


class PredictionSerializer(serializers.Serializer[Any]):
    loss = serializers.FloatField()
    interval = serializers.ListField(child=serializers.FloatField(allow_null=True))
    fit_id = serializers.IntegerField()
    extrapolation = serializers.DictField()
