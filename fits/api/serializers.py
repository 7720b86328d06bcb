"""Serializers of the fits, ranking and predict API."""

from typing import Any

from rest_framework import serializers

from apikit.fields import FiniteFloatField, StrictBooleanField, StrictIntegerField, slug_validator
from apikit.serializers import QueryNumbersMixin, StrictFieldsMixin
from fits.laws import DEFAULT_LAW, law_choices
from fits.models import Fit, Objective
from fits.ranking import ELIGIBILITY_RULE
from runs.api.serializers import bits_field
from runs.models import MAX_N_PARAMS, MAX_N_TOKENS


class FitSerializer(serializers.ModelSerializer[Fit]):
    """A fit version as the contract lists it (docs/api.md, Fits); draws are not part of the JSON."""

    n_draws = serializers.SerializerMethodField()
    n_runs = serializers.SerializerMethodField()
    quality = serializers.SerializerMethodField(
        help_text="Extension: the fit's verdict, good, weak or unusable (null until a fit has one); "
        "docs/laws-engine.md, 'A verdict on every fit'."
    )

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
            "screen_outliers",
            "screened",
            "quality",
            "quality_reasons",
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

    def get_quality(self, fit: Fit) -> str | None:
        return fit.quality or None


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
    law = serializers.ChoiceField(choices=law_choices(), default=DEFAULT_LAW)


class FitRequestSerializer(FitScopeQuerySerializer):
    """Body of POST /api/v1/fits/: the scope, and optionally the family's fit settings for this law (kept for the
    versions that follow, until changed again)."""

    objective = serializers.ChoiceField(
        choices=Objective.choices, required=False, help_text="least_squares (the default) or huber."
    )
    screen_outliers = StrictBooleanField(
        required=False, help_text="Leave out runs the law cannot describe (the default); false fits every run."
    )


class PredictQuerySerializer(QueryNumbersMixin, FitScopeQuerySerializer):
    """Query of GET /api/v1/predict/."""

    query_integers = frozenset({"n_params", "n_tokens", "exponent_bits", "mantissa_bits"})
    query_numbers = frozenset({"weight_bits", "activation_bits", "kv_bits", "post_train_bits"})

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
    data_range = serializers.DictField(
        help_text="Extension: per axis (n_params, n_tokens, compute, the bits the law reads) {value, min, max, "
        "position: below|inside|above, factor} against the fitted runs."
    )
    quality = serializers.CharField(allow_null=True, help_text="Extension: the fit's verdict (good, weak).")
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="Extension: outside the fitted runs' range; a weak fit's reasons."
    )


class LawRankingQuerySerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Query of GET /api/v1/fits/ranking/."""

    family = serializers.CharField(max_length=100, validators=[slug_validator])


class RankedLawSerializer(serializers.Serializer[Any]):
    """One law's current fit in the ranking (fits.ranking.RankedLaw)."""

    law = serializers.CharField()
    fit_id = serializers.IntegerField()
    version = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True, help_text="Backtest rmse_log_runs; lower is better.")
    n_held_out_runs = serializers.IntegerField(allow_null=True)
    n_params_fitted = serializers.IntegerField()
    n_runs = serializers.IntegerField(allow_null=True)
    ranked = serializers.BooleanField()
    eligible = serializers.BooleanField(help_text=ELIGIBILITY_RULE)
    reason = serializers.CharField(allow_null=True, help_text="Why unranked or not eligible; null otherwise.")
    rank = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField()
    scheme = serializers.CharField(
        allow_null=True, help_text="The backtest's held-out runs: largest_n or largest_compute; null when unranked."
    )
    held_out_n_params = serializers.ListField(
        child=serializers.FloatField(), help_text="The model sizes of the held-out runs."
    )
    n_runs_covered = serializers.IntegerField(
        allow_null=True, help_text="Extension: runs the fit covers (fitted plus screened), what eligibility compares."
    )
    quality = serializers.CharField(allow_null=True, help_text="Extension: the fit's verdict (good, weak, unusable).")


class RankingBasisSerializer(serializers.Serializer[Any]):
    """What the best law's score rests on."""

    law = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    scheme = serializers.CharField(allow_null=True)
    n_held_out_runs = serializers.IntegerField(allow_null=True)
    held_out_n_params = serializers.ListField(child=serializers.FloatField())


class LawRankingSerializer(serializers.Serializer[Any]):
    """Response of GET /api/v1/fits/ranking/: the family's laws by backtest error, best first."""

    family = serializers.CharField()
    best = serializers.CharField(allow_null=True)
    basis = RankingBasisSerializer(allow_null=True, help_text="What the best law's score rests on.")
    ranking = RankedLawSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField(), help_text="What weakens the choice of `best`.")
