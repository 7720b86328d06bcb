"""Serializers of the runs API: strict input (unknown fields are errors) and slim output."""

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from django.core.validators import MinValueValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apikit.fast_validation import Check, NotCompilable, compile_serializer, validate_all
from apikit.fields import (
    FiniteFloatField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    bounded_float_field,
    iso_utc,
    slug_validator,
)
from apikit.json_limits import unstorable_text
from apikit.serializers import StrictFieldsMixin
from runs.models import (
    MAX_BITS,
    MAX_EXPONENT_BITS,
    MAX_LOSS,
    MAX_MANTISSA_BITS,
    MAX_N_PARAMS,
    MAX_N_TOKENS,
    MIN_BITS,
    MIN_EXPONENT_BITS,
    MIN_MANTISSA_BITS,
    RUN_FIELDS,
    RUN_SCHEDULE_FIELDS,
    TRAINED_AT_MAX_SKEW_SECONDS,
    Evaluation,
    Run,
)
from runs.plausibility import run_flags
from runs.schedules import schedule_clean

METADATA_MAX_BYTES = 64 * 1024
# The earliest trained_at taken: older dates are typos (a year 0025), not language models.
TRAINED_AT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
BULK_MAX_RUNS = 1000


def bits_field(**kwargs: Any) -> FiniteFloatField:
    return bounded_float_field(MIN_BITS, MAX_BITS, **kwargs)


def loss_field(**kwargs: Any) -> FiniteFloatField:
    return FiniteFloatField(above=0.0, below=MAX_LOSS, **kwargs)


def architecture_field() -> StrictIntegerField:
    return StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1)


def evaluation_representation(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "post_train_bits": evaluation.post_train_bits,
        "method": evaluation.method,
        "loss": evaluation.loss,
        "created_at": iso_utc(evaluation.created_at),
        "updated_at": iso_utc(evaluation.updated_at),
    }


class EvaluationSerializer(StrictFieldsMixin, serializers.ModelSerializer[Evaluation]):
    """A post-training quantization result; `post_train_bits` must be below the run's `weight_bits`."""

    post_train_bits = FiniteFloatField(validators=[MinValueValidator(MIN_BITS)], below=MAX_BITS)
    method = StrictCharField(max_length=50, default="rtn", validators=[slug_validator])
    loss = loss_field()

    class Meta:
        model = Evaluation
        fields = ["post_train_bits", "method", "loss", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []  # uniqueness is the service's upsert, not an error


class RunSerializer(StrictFieldsMixin, serializers.ModelSerializer[Run]):
    """A training run with its evaluations; writes go through runs.services, never through save()."""

    external_id = StrictCharField(max_length=200, required=False, allow_null=True, allow_blank=False)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    family = StrictCharField(max_length=100, required=False, validators=[slug_validator])
    n_params = StrictIntegerField(min_value=1, max_value=MAX_N_PARAMS)
    param_count = serializers.ChoiceField(choices=Run.ParamCount.choices, required=False)
    n_tokens = StrictIntegerField(min_value=1, max_value=MAX_N_TOKENS)
    weight_bits = bits_field(required=False)
    activation_bits = bits_field(required=False)
    kv_bits = bits_field(required=False)
    number_format = serializers.ChoiceField(choices=Run.NumberFormat.choices, required=False)
    # Both or neither, and only for fp runs: rules across fields, checked by runs.services on the merged run.
    exponent_bits = StrictIntegerField(
        required=False, allow_null=True, min_value=MIN_EXPONENT_BITS, max_value=MAX_EXPONENT_BITS
    )
    mantissa_bits = StrictIntegerField(
        required=False, allow_null=True, min_value=MIN_MANTISSA_BITS, max_value=MAX_MANTISSA_BITS
    )
    final_loss = loss_field(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
    dataset = StrictCharField(max_length=200, required=False, allow_blank=True)
    eval_set = StrictCharField(max_length=200, required=False, allow_blank=True)
    n_layers = architecture_field()
    d_model = architecture_field()
    n_heads = architecture_field()
    n_kv_heads = architecture_field()
    seq_len = architecture_field()
    metadata = serializers.JSONField(required=False)
    excluded = StrictBooleanField(required=False)
    exclusion_reason = StrictCharField(required=False, allow_blank=True, max_length=10_000)
    trained_at = serializers.DateTimeField(required=False)
    # Extension (issue 24): the planned learning-rate schedule, described (docs/api.md, "Schedules"); null: none.
    schedule = serializers.JSONField(required=False, allow_null=True)
    # Extension: the id of the trunk run of the same team this run is the end of a cooldown of; checked by the service.
    cooldown_of = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    evaluations = EvaluationSerializer(many=True, required=False, max_length=1000)  # type: ignore[call-arg]
    effective_params_16bit = serializers.SerializerMethodField()
    density = serializers.SerializerMethodField()
    flags = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            *RUN_FIELDS,
            *RUN_SCHEDULE_FIELDS,
            "evaluations",
            "effective_params_16bit",
            "density",
            "flags",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list[Any] = []  # (team, external_id) uniqueness is the service's upsert

    def _density(self, instance: Run) -> tuple[float | None, float | None]:
        """From the context's "densities" (run id -> pair, runs.selectors.run_densities), computed
        per page by the view; (None, None) when the run or its family has none."""
        densities: Mapping[int, tuple[float | None, float | None]] = self.context.get("densities") or {}
        return densities.get(instance.pk, (None, None))

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_effective_params_16bit(self, instance: Run) -> float | None:
        return self._density(instance)[0]

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_density(self, instance: Run) -> float | None:
        return self._density(instance)[1]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_flags(self, instance: Run) -> list[str]:
        """Extension: why the run's inputs are implausible (runs.plausibility); fits leave such runs out."""
        return run_flags(instance.n_params, instance.n_tokens)

    def _evaluations(self, instance: Run) -> list[Any]:
        """The run's evaluations in the model's order (highest post_train_bits first, then method): from the
        context's "evaluations" (run id -> those just inserted) when the view has them, else from the run."""
        given = (self.context.get("evaluations") or {}).get(instance.pk)
        if given is None:
            return list(instance.evaluations.all())
        return sorted(given, key=lambda e: (-e.post_train_bits, e.method))

    def to_representation(self, instance: Run) -> dict[str, Any]:
        """The same JSON as DRF's field-by-field rendering, built directly: a list page of 100 runs with
        their evaluations costs about a tenth of the time (tests/runs/test_representation.py)."""
        n_hat, density = self._density(instance)
        return {
            "id": instance.pk,
            **{name: getattr(instance, name) for name in RUN_FIELDS},
            "trained_at": iso_utc(instance.trained_at),
            "schedule": instance.schedule,
            "cooldown_of": instance.cooldown_of_id,
            "evaluations": [evaluation_representation(e) for e in self._evaluations(instance)],
            "effective_params_16bit": n_hat,
            "density": density,
            "flags": run_flags(instance.n_params, instance.n_tokens),
            "created_at": iso_utc(instance.created_at),
            "updated_at": iso_utc(instance.updated_at),
        }

    def validate_metadata(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except ValueError:
            raise serializers.ValidationError("Must not contain NaN or Infinity.") from None
        problem = unstorable_text(value)
        if problem:
            raise serializers.ValidationError(problem)
        if size > METADATA_MAX_BYTES:
            raise serializers.ValidationError(f"Is {size} bytes serialized; the limit is {METADATA_MAX_BYTES}.")
        return value

    def validate_schedule(self, value: Any) -> dict[str, Any] | None:
        """A schedule description with every field checked on its own (errors keyed by the schedule's field)."""
        if value is None:
            return None
        cleaned, errors = schedule_clean(value)
        if errors:
            raise serializers.ValidationError(errors.get("schedule") or errors)
        return cleaned

    def validate_trained_at(self, value: datetime) -> datetime:
        """When training finished: not before 2000, and not later than now plus a small clock-skew allowance."""
        if value < TRAINED_AT_EARLIEST:
            raise serializers.ValidationError(f"Must be on or after {iso_utc(TRAINED_AT_EARLIEST)}.")
        latest = timezone.now() + timedelta(seconds=TRAINED_AT_MAX_SKEW_SECONDS)
        if value > latest:
            raise serializers.ValidationError(
                f"Must not be in the future (the server's time is {iso_utc(timezone.now())}; "
                f"{TRAINED_AT_MAX_SKEW_SECONDS} s of clock skew are allowed)."
            )
        return value

    def validate_evaluations(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[tuple[float, str]] = set()
        for position, item in enumerate(value):
            key = (item["post_train_bits"], item.get("method", "rtn"))
            if key in seen:
                raise serializers.ValidationError(
                    {str(position): ["Repeats an earlier evaluation's post_train_bits and method."]}
                )
            seen.add(key)
        return value


class RunUpdateSerializer(RunSerializer):
    """PATCH of a run: every field optional; evaluations are added through their own endpoint."""

    read_only_hints: ClassVar[dict[str, str]] = {
        "evaluations": "Read-only after creation: add evaluations with POST /api/v1/runs/{id}/evaluations/."
    }

    n_params = StrictIntegerField(min_value=1, max_value=MAX_N_PARAMS, required=False)
    n_tokens = StrictIntegerField(min_value=1, max_value=MAX_N_TOKENS, required=False)
    evaluations = EvaluationSerializer(many=True, read_only=True)


class BulkRunsSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """The envelope of POST /runs/bulk/; each run is validated on its own so errors carry its index."""

    runs = serializers.ListField(allow_empty=False, max_length=BULK_MAX_RUNS)


class FamilySerializer(serializers.Serializer[Any]):
    """One family of the team with its counts."""

    family = serializers.CharField()
    runs = serializers.IntegerField()
    evaluations = serializers.IntegerField()
    last_run_at = serializers.DateTimeField()


@functools.cache
def _run_fast_check() -> Check | None:
    """RunSerializer's compiled fast path, or None if it cannot be compiled (tests/runs/test_fast_validation.py
    fails then)."""
    try:
        return compile_serializer(RunSerializer())
    except NotCompilable:
        return None


def runs_validate(items: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Validate many run bodies with one serializer: (validated items, errors keyed by position).

    A batch of plain, valid bodies is validated by the serializer's compiled fast path (apikit.fast_validation,
    about a fifth of the cost); when it is unsure of any body, the whole batch goes through the serializer, so
    the errors are the serializer's. Building a serializer deep-copies its fields (about 1 ms); a batch of 1,000
    builds one, not 1,000.
    """
    check = _run_fast_check()
    fast = validate_all(check, items) if check is not None else None
    if fast is not None:
        return fast, {}
    serializer = RunSerializer()
    validated: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    for position, item in enumerate(items):
        try:
            validated.append(serializer.run_validation(item))
        except serializers.ValidationError as exc:
            errors[str(position)] = exc.detail
    return validated, errors
