"""A fast path for validating many bodies against one DRF serializer, for the common, valid body.

DRF validates field by field through several layers of calls (get_value, run_validation, validate_empty_values,
to_internal_value, run_validators, one call per validator): about 0.1 ms for a run with three evaluations. The
checker compiled here does the same work in about a tenth of that, in plain Python, for the field classes it
knows, reading every rule (bounds, lengths, choices, nullability, defaults, validators) from the serializer's own
field instances, so that each rule keeps one home: the serializer.

It only ever answers "valid, and this is the validated data" or `Unsure`. Anything it does not recognise (an
unknown or read-only key, a wrong type, a value out of range, a missing required field, a field class it does
not know the internals of) is `Unsure`, and the caller then validates the whole batch with the serializer, so
error responses stay exactly the serializer's. Fields of a class it does not inline (dates, JSON) and the
serializer's `validate_<field>` methods are run through DRF's own code, so their results are DRF's by
construction. tests/runs/test_fast_validation.py checks with Hypothesis that what the fast path accepts, DRF
accepts with equal data (types included).

It exists for bulk ingest's target (4,000 runs/s, bench/ingest.py): validating 1,000 bodies took 91-97 ms through
the serializer and 8.5-11 ms here, which took a bulk post of 1,000 runs from 240 to 159 ms of CPU and the bench
from 3,600 to 5,000 runs/s (docs/benchmarks.md, "Bulk ingest fast path").
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import serializers
from rest_framework.fields import SkipField, empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from apikit.fields import FiniteFloatField, StrictBooleanField, StrictCharField, StrictIntegerField
from apikit.serializers import StrictFieldsMixin

Check = Callable[[Any], Any]
_REQUIRED, _SKIP, _DELEGATED = "required", "skip", "delegated"  # what a missing key means for a field
_SKIPPED = object()  # a delegated field that DRF leaves out of the validated data


class Unsure(Exception):  # noqa: N818 (a verdict, not an error: the serializer decides)
    """The fast path cannot vouch for a value: validate with the serializer instead."""


class NotCompilable(TypeError):
    """The serializer does something the fast path does not reproduce (its own validate(), a field source
    other than its name, a partial update...): validate it the ordinary way."""


def _bounds(validators: Sequence[Any], *, low: type[Any], high: type[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(lower limits, upper limits, other validators) of a field: limits of the Django validators `low` and
    `high` (inclusive, as Django compares), read from the instances so that the rule has one home."""
    lows: list[Any] = []
    highs: list[Any] = []
    others: list[Any] = []
    for validator in validators:
        if type(validator) is low and not callable(validator.limit_value):
            lows.append(validator.limit_value)
        elif type(validator) is high and not callable(validator.limit_value):
            highs.append(validator.limit_value)
        else:
            others.append(validator)
    return lows, highs, others


def _run_others(others: Sequence[Any]) -> Callable[[Any], None]:
    """Call the validators the fast path does not inline, as DRF's run_validators does; any failure is Unsure."""

    def run(value: Any) -> None:
        for validator in others:
            try:
                validator(value)
            except (serializers.ValidationError, DjangoValidationError):
                raise Unsure from None

    return run


def _integer(field: StrictIntegerField) -> Check | None:
    lows, highs, others = _bounds(field.validators, low=MinValueValidator, high=MaxValueValidator)
    if others:
        return None
    low, high = max(lows, default=None), min(highs, default=None)
    allow_null = field.allow_null

    def check(raw: Any) -> Any:
        kind = type(raw)
        if kind is int:
            value = raw
        elif kind is float and raw.is_integer():  # False for NaN and the infinities
            value = int(raw)
        elif raw is None and allow_null:
            return None
        else:
            raise Unsure
        if (low is not None and value < low) or (high is not None and value > high):
            raise Unsure
        return value

    return check


def _finite_float(field: FiniteFloatField) -> Check | None:
    lows, highs, others = _bounds(field.validators, low=MinValueValidator, high=MaxValueValidator)
    if others:
        return None
    low, high = max(lows, default=None), min(highs, default=None)
    above, below, allow_null = field.above, field.below, field.allow_null
    isfinite = math.isfinite

    def check(raw: Any) -> Any:
        kind = type(raw)
        if kind is float:
            value = raw
        elif kind is int:
            try:
                value = float(raw)
            except OverflowError:
                raise Unsure from None
        elif raw is None and allow_null:
            return None
        else:
            raise Unsure
        if not isfinite(value):
            raise Unsure
        if (above is not None and not value > above) or (below is not None and not value < below):
            raise Unsure
        if (low is not None and value < low) or (high is not None and value > high):
            raise Unsure
        return value

    return check


def _char(field: StrictCharField) -> Check | None:
    shortest, longest, rest = _bounds(field.validators, low=MinLengthValidator, high=MaxLengthValidator)
    # Every CharField carries these two; they are inlined below.
    others = [v for v in rest if type(v) not in (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)]
    if any(getattr(v, "requires_context", False) for v in others):
        return None
    low, high = max(shortest, default=None), min(longest, default=None)
    allow_blank, allow_null, trim = field.allow_blank, field.allow_null, field.trim_whitespace
    run_others = _run_others(others)

    def check(raw: Any) -> Any:
        if type(raw) is not str:
            if raw is None and allow_null:
                return None
            raise Unsure
        value = raw.strip() if trim else raw
        if value == "":  # DRF returns a blank string before any validator sees it
            if allow_blank:
                return ""
            raise Unsure
        size = len(value)
        if (low is not None and size < low) or (high is not None and size > high) or "\x00" in value:
            raise Unsure
        if not value.isascii():
            try:
                value.encode()  # fails exactly on a lone surrogate, as DRF's validator refuses
            except UnicodeEncodeError:
                raise Unsure from None
        run_others(value)
        return value

    return check


def _boolean(field: StrictBooleanField) -> Check | None:
    if field.validators:
        return None
    allow_null = field.allow_null

    def check(raw: Any) -> Any:
        if type(raw) is bool:
            return raw
        if raw is None and allow_null:
            return None
        raise Unsure

    return check


def _choice(field: serializers.ChoiceField) -> Check | None:
    if field.validators:
        return None
    values = dict(field.choice_strings_to_values)
    allow_blank, allow_null = field.allow_blank, field.allow_null

    def check(raw: Any) -> Any:
        if type(raw) is str:
            if raw in values:
                return values[raw]
            if raw == "" and allow_blank:
                return ""
        elif raw is None and allow_null:
            return None
        raise Unsure

    return check


def _list_of(field: Any) -> Check | None:
    """A list of nested bodies (`many=True`), each through the child serializer's compiled check."""
    if field.validators:
        return None
    try:
        child = compile_serializer(field.child)
    except NotCompilable:
        return None
    allow_empty, allow_null = field.allow_empty, field.allow_null
    shortest, longest = field.min_length, field.max_length

    def check(raw: Any) -> Any:
        if type(raw) is not list:
            if raw is None and allow_null:
                return None
            raise Unsure
        size = len(raw)
        if (
            (not allow_empty and size == 0)
            or (longest is not None and size > longest)
            or (shortest is not None and size < shortest)
        ):
            raise Unsure
        return [child(item) for item in raw]

    return check


# The field classes the fast path inlines, by exact class: a subclass may change any step, so it is delegated.
_INLINED: dict[type, Callable[[Any], Check | None]] = {
    StrictIntegerField: _integer,
    FiniteFloatField: _finite_float,
    StrictCharField: _char,
    StrictBooleanField: _boolean,
    serializers.ChoiceField: _choice,
    serializers.ListSerializer: _list_of,
}


def _definers(cls: type, name: str) -> list[type]:
    """The classes of `cls`'s MRO that define `name` themselves, nearest first."""
    return [klass for klass in cls.__mro__ if name in vars(klass)]


def _delegated(field: Any, method: Callable[[Any], Any] | None) -> Callable[[dict[str, Any]], Any]:
    """DRF's own steps for a field class the fast path does not inline (get_value, run_validation, then the
    serializer's validate_<field>); returns _SKIPPED where DRF leaves the field out, and a refusal is Unsure."""

    def check(body: dict[str, Any]) -> Any:
        try:
            value = field.run_validation(field.get_value(body))
            return value if method is None else method(value)
        except SkipField:
            return _SKIPPED
        except (serializers.ValidationError, DjangoValidationError):
            raise Unsure from None

    return check


def _with_method(check: Check, method: Callable[[Any], Any]) -> Check:
    """A field's check followed by the serializer's `validate_<field>` method, as DRF runs them."""

    def checked(raw: Any) -> Any:
        value = check(raw)
        try:
            return method(value)
        except (serializers.ValidationError, DjangoValidationError):
            raise Unsure from None

    return checked


def compile_serializer(serializer: Any) -> Check:
    """A function taking one body (the parsed JSON) and returning what `serializer.run_validation(body)` returns
    when it accepts the body, or raising Unsure. Raises NotCompilable for a serializer whose validation steps it
    does not reproduce: a to_internal_value other than the strict mixin's over DRF's, its own run_validation,
    validate() or validators, or a partial update."""
    cls = type(serializer)
    if (
        _definers(cls, "to_internal_value")[:2] != [StrictFieldsMixin, serializers.Serializer]
        or _definers(cls, "run_validation")[0] is not serializers.Serializer
        or _definers(cls, "run_validators")[0] is not serializers.Serializer
        or _definers(cls, "validate")[0] is not serializers.Serializer
        or serializer.validators
        or getattr(serializer.root, "partial", False)
    ):
        raise NotCompilable(f"{cls.__name__} validates in ways the fast path does not reproduce")

    # One step per writable field, in DRF's order: (name, check, absent) where `absent` says what a missing key
    # means for an inlined field (required: Unsure; skipped; or a function giving the default); a delegated
    # field's check takes the whole body and `absent` is _DELEGATED.
    plan: list[tuple[str, Any, Any]] = []
    for field in serializer._writable_fields:
        name = field.field_name
        if field.source_attrs != [name]:
            raise NotCompilable(f"{cls.__name__}.{name} has a source other than its name")
        method = getattr(serializer, "validate_" + name, None)
        inline = _INLINED.get(type(field))
        check = inline(field) if inline is not None else None
        if check is None:
            plan.append((name, _delegated(field, method), _DELEGATED))
            continue
        if method is not None:
            check = _with_method(check, method)
        if field.required:
            absent: Any = _REQUIRED
        elif field.default is empty:
            absent = _SKIP
        else:
            absent = _default_of(field, method)
        plan.append((name, check, absent))
    accepted = frozenset(name for name, _, _ in plan)

    def validate(body: Any) -> dict[str, Any]:
        # A JSON object whose keys are all writable fields: an unknown or read-only key is the strict mixin's error.
        if type(body) is not dict or not accepted.issuperset(body):
            raise Unsure
        validated: dict[str, Any] = {}
        for name, check, absent in plan:
            if absent is _DELEGATED:
                value = check(body)
                if value is not _SKIPPED:
                    validated[name] = value
            elif name in body:
                validated[name] = check(body[name])
            elif absent is _SKIP:
                continue
            elif absent is _REQUIRED:
                raise Unsure
            else:
                validated[name] = absent()
        return validated

    return validate


def _default_of(field: Any, method: Callable[[Any], Any] | None) -> Callable[[], Any]:
    """The value DRF gives a field whose key is missing: its default, through the serializer's validate_<field>."""

    def default() -> Any:
        value = field.get_default()
        if method is None:
            return value
        try:
            return method(value)
        except (serializers.ValidationError, DjangoValidationError):
            raise Unsure from None

    return default


def validate_all(check: Check, bodies: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Every body through `check`, or None as soon as one is Unsure."""
    try:
        return [check(body) for body in bodies]
    except Unsure:
        return None
