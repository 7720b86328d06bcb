"""The fast path of run validation (apikit.fast_validation, used by runs_validate): whatever it accepts, DRF's
RunSerializer accepts with equal validated data, types and key order included; a plain valid body takes it;
anything else goes through the serializer, whose errors the API returns unchanged.

Bodies are drawn from valid and invalid values of every field (bounds read from the same constants as the
serializer), with a few fields spoiled at a time so that many bodies sit near a bound. Derandomized, so a run
is repeatable; the examples per test are bounded for CI.
"""

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from apikit.fast_validation import NotCompilable, Unsure, compile_serializer
from runs.api.serializers import (
    METADATA_MAX_BYTES,
    TRAINED_AT_EARLIEST,
    RunSerializer,
    RunUpdateSerializer,
    _run_fast_check,
    runs_validate,
)
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
    Run,
)
from tests.factories import payload

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MAX_INT32 = 2**31 - 1
INF = math.inf

# Values that are wrong for most fields, whatever their type.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.sampled_from(["", " ", "1", "true", "\x00", "\ud800", "é"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
SLUG_CHARS = "abcXYZ019-_"
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)  # no NUL, no lone
# surrogate: the serializer refuses both (PostgreSQL cannot store them)
SLUGS = st.text(SLUG_CHARS, min_size=1, max_size=12)


class Values(NamedTuple):
    """Values of one field: valid ones, and unusual ones (invalid, or valid only just); `edges` are the fixed
    unusual values, each tried on its own by test_each_edge_value_answers_as_the_serializer."""

    valid: st.SearchStrategy[Any]
    unusual: st.SearchStrategy[Any]
    edges: list[Any]


def values(valid: st.SearchStrategy[Any], edges: list[Any], *others: st.SearchStrategy[Any]) -> Values:
    return Values(valid, st.one_of(st.sampled_from(edges), *others), edges)


def ints(low: int, high: int) -> Values:
    """A JSON integer in [low, high]."""
    valid = st.one_of(
        st.integers(low, high),
        st.sampled_from([low, high]),
        st.integers(low, min(high, 2**52)).map(float),  # an integral float such as 2e10 is an integer
    )
    edges = [low - 1, low, high, high + 1, float(low), low + 0.5, high - 0.5, float(high + 1), INF, -INF, math.nan]
    return values(valid, [*edges, True, False, str(low), 10**400], st.integers(), st.floats())


def floats(low: float, high: float, *, exclude_low: bool = False, exclude_high: bool = False) -> Values:
    """A finite JSON number in the range."""
    valid = st.one_of(
        st.floats(low, high, exclude_min=exclude_low, exclude_max=exclude_high),
        st.integers(
            math.floor(low) + 1 if exclude_low else math.ceil(low),
            math.ceil(high) - 1 if exclude_high else math.floor(high),
        ),
    )
    near = [math.nextafter(low, -INF), math.nextafter(low, INF), math.nextafter(high, -INF), math.nextafter(high, INF)]
    edges = [low, high, int(low), int(high), int(high) + 1, *near, 0, 0.0, -0.0, INF, -INF, math.nan]
    return values(valid, [*edges, True, str(low), 10**400], st.floats(), st.integers(-(10**400), 10**400))


def texts(max_length: int, *, blank: bool, slug: bool = False) -> Values:
    """A JSON string of at most `max_length` characters (after trimming), a slug if `slug`."""
    longest = st.text(SLUG_CHARS, min_size=max_length - 1, max_size=max_length)
    if slug:
        valid: st.SearchStrategy[Any] = st.one_of(SLUGS, longest)
    else:
        valid = st.one_of(
            TEXT.map(lambda s: s if blank or s.strip() else s + "x"),
            longest,
            longest.map(lambda s: f" {s}\n"),  # trimmed to at most max_length
            st.sampled_from([" padded ", "\tx\n", "é-ü", "ok", *([" ", ""] if blank else [])]),
        )
    edges: list[Any] = [
        "",
        " ",
        "\t\n",
        "a\x00b",
        "\x00",
        "x\ud800",
        "a b",
        "a!",
        "é",
        " a",
        "a ",
        "\u3000a\u3000",
        "ünïcode",
    ]
    edges += ["x" * max_length, "x" * (max_length + 1), f" {'x' * max_length} ", 5, 5.0, True, None, ["a"]]
    return values(valid, edges, st.text(SLUG_CHARS + " !.", min_size=max_length - 1, max_size=max_length + 2), TEXT)


def choices(options: list[str]) -> Values:
    return values(st.sampled_from(options), ["", " ", options[0].upper(), f" {options[0]}", 1, None, "bf16"])


def nullable(pair: Values) -> Values:
    return Values(st.one_of(pair.valid, st.none()), pair.unusual, [*pair.edges, None])


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# Whole days, so every test process collects the same parameters (pytest-xdist compares their ids).
NOW = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
TRAINED_AT = values(
    st.datetimes(
        min_value=TRAINED_AT_EARLIEST.replace(tzinfo=None), max_value=(NOW - timedelta(days=1)).replace(tzinfo=None)
    ).map(lambda d: _iso(d.replace(tzinfo=UTC))),
    [
        _iso(TRAINED_AT_EARLIEST),
        _iso(TRAINED_AT_EARLIEST - timedelta(seconds=1)),
        _iso(NOW + timedelta(days=2)),
        "2024-02-30T00:00:00Z",
        "yesterday",
        "2024-01-01",
        "2024-01-01T00:00:00",  # no offset: read in the server's time zone
        "2024-01-01T02:00:00+02:00",
        " 2024-01-01T00:00:00Z",
        "",
        None,
        1_700_000_000,
    ],
    JUNK,
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
METADATA = values(
    st.dictionaries(TEXT, st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)), max_size=4),
    [{}, [], "text", None, {"a": math.nan}, {"a": INF}, {"k\x00": 1}, {"a": "\ud800"}, {"a": "x" * METADATA_MAX_BYTES}],
    JUNK,
)
EVALUATION_FIELDS = {
    "post_train_bits": floats(MIN_BITS, MAX_BITS, exclude_high=True),
    "method": texts(50, blank=False, slug=True),
    "loss": floats(0.0, MAX_LOSS, exclude_low=True, exclude_high=True),
}


@st.composite
def evaluation_bodies(draw: Any, *, valid: bool) -> dict[str, Any]:
    fields = EVALUATION_FIELDS
    spoiled = set() if valid else set(draw(st.lists(st.sampled_from([*fields, "extra", "missing"]), max_size=2)))
    body: dict[str, Any] = {}
    for name, (good, bad, _) in fields.items():
        required = name != "method"
        if "missing" in spoiled and draw(st.booleans()):
            continue
        if not required and not draw(st.booleans()):
            continue
        body[name] = draw(st.one_of(bad, JUNK) if name in spoiled else good)
    if "extra" in spoiled:
        body[draw(st.sampled_from(["created_at", "updated_at", "bogus", "id"]))] = draw(JUNK)
    return body


def _unique(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluations with a distinct (post_train_bits, method), as a valid run has."""
    seen, kept = set(), []
    for item in evaluations:
        key = (float(item["post_train_bits"]), item.get("method", "rtn"))
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


EVALUATION = {"post_train_bits": 3, "loss": 3.2}
EVALUATIONS = values(
    st.lists(evaluation_bodies(valid=True), max_size=4).map(_unique),
    [
        [],
        None,
        {},
        [None],
        [EVALUATION, EVALUATION],
        [EVALUATION, {**EVALUATION, "method": "rtn"}],
        [EVALUATION, {**EVALUATION, "post_train_bits": 3.0}],
        [EVALUATION, {**EVALUATION, "method": "gptq"}],
        [{"post_train_bits": 3}],
        [{**EVALUATION, "created_at": "2024-01-01T00:00:00Z"}],
        [EVALUATION] * 1001,
        [{**EVALUATION, "post_train_bits": 1 + i / 100} for i in range(1001)],  # one past the limit, all distinct
    ],
    st.lists(st.one_of(evaluation_bodies(valid=False), evaluation_bodies(valid=True)), max_size=4),
    st.builds(lambda e: [e, dict(e)], evaluation_bodies(valid=True)),  # a repeated evaluation
    JUNK,
)
ARCHITECTURE = nullable(ints(1, MAX_INT32))
# (valid, invalid or unusual) values of every writable field of a run, bounds from the serializer's constants.
RUN_FIELDS: dict[str, Values] = {
    "external_id": nullable(texts(200, blank=False)),
    "name": texts(200, blank=True),
    "family": texts(100, blank=False, slug=True),
    "n_params": ints(1, MAX_N_PARAMS),
    "param_count": choices(list(Run.ParamCount.values)),
    "n_tokens": ints(1, MAX_N_TOKENS),
    "weight_bits": floats(MIN_BITS, MAX_BITS),
    "activation_bits": floats(MIN_BITS, MAX_BITS),
    "kv_bits": floats(MIN_BITS, MAX_BITS),
    "number_format": choices(list(Run.NumberFormat.values)),
    "exponent_bits": nullable(ints(MIN_EXPONENT_BITS, MAX_EXPONENT_BITS)),
    "mantissa_bits": nullable(ints(MIN_MANTISSA_BITS, MAX_MANTISSA_BITS)),
    "final_loss": nullable(floats(0.0, MAX_LOSS, exclude_low=True, exclude_high=True)),
    "status": choices(list(Run.Status.values)),
    "dataset": texts(200, blank=True),
    "eval_set": texts(200, blank=True),
    "n_layers": ARCHITECTURE,
    "d_model": ARCHITECTURE,
    "n_heads": ARCHITECTURE,
    "n_kv_heads": ARCHITECTURE,
    "seq_len": ARCHITECTURE,
    "metadata": METADATA,
    "excluded": values(st.booleans(), [True, False, "false", 0, 1, None], JUNK),
    "exclusion_reason": texts(10_000, blank=True),
    "trained_at": TRAINED_AT,
    "evaluations": EVALUATIONS,
}
REQUIRED = {"n_params", "n_tokens"}
NOT_WRITABLE = ["id", "created_at", "updated_at", "effective_params_16bit", "density", "bogus", "n_param"]


@st.composite
def run_bodies(draw: Any, *, valid: bool) -> dict[str, Any]:
    """A run body; unless `valid`, up to three of its fields (or its set of keys) are spoiled."""
    spoiled: set[str] = set()
    if not valid:
        spoiled = set(draw(st.lists(st.sampled_from([*RUN_FIELDS, "extra key", "missing"]), max_size=3)))
    body: dict[str, Any] = {}
    for name, (good, bad, _) in RUN_FIELDS.items():
        if name in REQUIRED:
            present = not ("missing" in spoiled and draw(st.booleans()))
        else:
            present = name in spoiled or draw(st.integers(0, 3)) == 0
        if present:
            body[name] = draw(st.one_of(bad, JUNK) if name in spoiled else good)
    if "extra key" in spoiled:
        body[draw(st.sampled_from(NOT_WRITABLE))] = draw(JUNK)
    return body


def assert_identical(fast: Any, slow: Any, path: str = "") -> None:
    """Equal values of the same types, dicts with their keys in the same order (1 == 1.0 is not enough)."""
    assert type(fast) is type(slow), f"{path}: {type(fast).__name__} vs {type(slow).__name__}"
    if isinstance(fast, dict):
        assert list(fast) == list(slow), path
        for key in fast:
            assert_identical(fast[key], slow[key], f"{path}.{key}")
    elif isinstance(fast, list):
        assert len(fast) == len(slow), path
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
            assert_identical(a, b, f"{path}[{i}]")
    elif isinstance(fast, float) and math.isnan(fast):
        assert math.isnan(slow), path
    else:
        assert fast == slow, path


def drf(body: Any) -> Any:
    return RunSerializer().run_validation(body)


def fast(body: Any) -> Any:
    check = _run_fast_check()
    assert check is not None, "RunSerializer no longer compiles to a fast path"
    return check(body)


# Properties ---------------------------------------------------------------------------------------------


@SETTINGS
@given(body=run_bodies(valid=False))
def test_what_the_fast_path_accepts_drf_accepts_with_identical_data(body):
    try:
        accepted = fast(body)
    except Unsure:
        event("fast path unsure")
        return
    event("fast path accepted")
    assert_identical(accepted, drf(body))  # drf() raises ValidationError if it refuses the body


@settings(SETTINGS, max_examples=200)
@given(body=run_bodies(valid=True))
def test_a_valid_body_takes_the_fast_path_with_identical_data(body):
    assert_identical(fast(body), drf(body))


@settings(SETTINGS, max_examples=100)
@given(bodies=st.lists(st.one_of(run_bodies(valid=True), run_bodies(valid=False)), min_size=1, max_size=4))
def test_runs_validate_answers_as_the_serializer_item_by_item(bodies):
    serializer = RunSerializer()
    expected_items, expected_errors = [], {}
    for position, body in enumerate(bodies):
        try:
            expected_items.append(serializer.run_validation(body))
        except ValidationError as exc:
            expected_errors[str(position)] = exc.detail

    items, errors = runs_validate(bodies)

    assert errors == expected_errors
    assert_identical(items, expected_items)


# Examples ------------------------------------------------------------------------------------------------

BENCH_RUN = {
    "external_id": "bench-1",
    "family": "fam-1",
    "n_params": 20_000_000,
    "n_tokens": 400_000_000,
    "weight_bits": 8,
    "activation_bits": 16,
    "kv_bits": 16,
    "final_loss": 2.51,
    "evaluations": [{"post_train_bits": b, "loss": 3.5 - b / 10} for b in (2, 3, 3.5)],
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param(name, value, id=f"{name}={value!r:.40}")
        for name, field in RUN_FIELDS.items()
        for value in field.edges
    ]
    + [
        pytest.param(f"evaluations.{name}", value, id=f"evaluations.{name}={value!r:.40}")
        for name, field in EVALUATION_FIELDS.items()
        for value in field.edges
    ],
)
def test_each_edge_value_answers_as_the_serializer(name, value):
    if name.startswith("evaluations."):
        body = {**BENCH_RUN, "evaluations": [{**EVALUATION, name.split(".")[1]: value}]}
    else:
        body = {**BENCH_RUN, name: value}
    try:
        accepted = fast(body)
    except Unsure:
        with pytest.raises(ValidationError):  # unsure only of what the serializer refuses, for these plain values
            drf(body)
        return
    assert_identical(accepted, drf(body))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(BENCH_RUN, id="bench"),
        pytest.param(payload(), id="factory"),
        pytest.param({"n_params": 2e10, "n_tokens": 4e11}, id="integral floats and nothing else"),
        pytest.param({**BENCH_RUN, "name": "  padded  ", "external_id": None, "dataset": "   "}, id="trimmed"),
        pytest.param(
            {
                **BENCH_RUN,
                "param_count": "total",
                "number_format": "fp",
                "exponent_bits": 4,
                "mantissa_bits": 3,
                "status": "running",
                "final_loss": None,
                "n_layers": 12,
                "seq_len": None,
                "metadata": {"lr": 3e-4, "tags": ["a", "b"], "nested": {"ok": True}},
                "excluded": True,
                "exclusion_reason": "diverged",
                "trained_at": "2024-05-01T12:00:00Z",
                "evaluations": [
                    {"post_train_bits": 4, "method": "gptq", "loss": 3.0},
                    {"post_train_bits": 4, "loss": 3},
                ],
            },
            id="every field",
        ),
    ],
)
def test_plain_valid_bodies_take_the_fast_path(body):
    assert_identical(fast(body), drf(body))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**BENCH_RUN, "weight_bits": 33}, id="out of range"),
        pytest.param({**BENCH_RUN, "n_param": 10}, id="unknown key"),
        pytest.param({**BENCH_RUN, "id": 5}, id="read-only key"),
        pytest.param({k: v for k, v in BENCH_RUN.items() if k != "n_tokens"}, id="missing n_tokens"),
        pytest.param({**BENCH_RUN, "n_params": True}, id="bool as integer"),
        pytest.param({**BENCH_RUN, "family": "my family"}, id="not a slug"),
        pytest.param({**BENCH_RUN, "trained_at": "1999-12-31T00:00:00Z"}, id="trained_at too early"),
        pytest.param({**BENCH_RUN, "metadata": {"a": math.nan}}, id="metadata NaN"),
        pytest.param({**BENCH_RUN, "evaluations": [{"post_train_bits": 3, "loss": 3}] * 2}, id="repeated evaluation"),
        pytest.param({**BENCH_RUN, "evaluations": [{"post_train_bits": 3}]}, id="evaluation without loss"),
        pytest.param([BENCH_RUN], id="not an object"),
    ],
)
def test_anything_drf_refuses_is_unsure(body):
    with pytest.raises(Unsure):
        fast(body)


def test_a_partial_or_custom_serializer_is_not_compiled():
    with pytest.raises(NotCompilable):
        compile_serializer(RunUpdateSerializer(partial=True))


@pytest.mark.django_db
def test_one_bad_run_in_a_bulk_answers_exactly_as_the_serializer(client_rw):
    runs = [{**BENCH_RUN, "external_id": f"b-{i}"} for i in range(5)]
    runs[3] = {**runs[3], "weight_bits": 33, "evaluations": [{"post_train_bits": 2, "loss": 0}]}
    with pytest.raises(ValidationError) as refused:
        drf(runs[3])
    expected = json.loads(json.dumps({"errors": {"3": refused.value.detail}}))

    response = client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json")

    assert response.status_code == 400
    assert response.json() == expected
    assert list(expected["errors"]["3"]) == ["weight_bits", "evaluations"]
