"""Property tests (Hypothesis) of predict, plans and suggestions on a family with succeeded fits of every law:
whatever the sizes, bits, fp formats, budgets and constraints, each answer is a 2xx or a 4xx naming a field of
the request, never a 5xx. Derandomized, so a run is repeatable; the examples per test are bounded for CI.
"""

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs.models import MAX_N_PARAMS, MAX_N_TOKENS
from tests.hardening.fitted import FAMILY, problems

pytestmark = pytest.mark.django_db

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LAWS = st.sampled_from(["chinchilla", "precision", "fp"])
BITS = st.floats(min_value=1.0, max_value=32.0)
POSITIVE = st.floats(min_value=5e-324, max_value=1e36, allow_nan=False, allow_infinity=False)
SIZES = st.integers(min_value=1, max_value=MAX_N_PARAMS)
TOKENS = st.integers(min_value=1, max_value=MAX_N_TOKENS)


@st.composite
def predict_queries(draw: Any) -> dict[str, Any]:
    query = {"family": FAMILY, "law": draw(LAWS), "n_params": draw(SIZES), "n_tokens": draw(TOKENS)}
    for key in ("weight_bits", "activation_bits", "kv_bits"):
        if draw(st.booleans()):
            query[key] = draw(BITS)
    if draw(st.booleans()):
        query["post_train_bits"] = draw(st.floats(min_value=0.01, max_value=31.99))
    if draw(st.booleans()):
        query["exponent_bits"] = draw(st.integers(1, 8))
        query["mantissa_bits"] = draw(st.integers(0, 23))
    return query


def budgets() -> st.SearchStrategy[dict[str, Any]]:
    flops = st.builds(lambda c: {"flops": c}, POSITIVE)
    hours = st.builds(
        lambda h, hw, mfu: {"gpu_hours": h, "hardware": hw} | ({} if mfu is None else {"mfu": mfu}),
        st.floats(min_value=5e-324, max_value=1e15),
        st.sampled_from(["a100", "h100", "h200", "b200"]),
        st.none() | st.floats(min_value=5e-324, max_value=1.0),
    )
    return flops | hours


@st.composite
def constraints(draw: Any) -> dict[str, Any]:
    optional = {
        "n_params": SIZES,
        "n_params_max": SIZES,
        "n_tokens_max": TOKENS,
        "weight_bits": BITS,
        "activation_bits": BITS,
        "kv_bits": BITS,
        "bits_choices": st.lists(BITS, min_size=1, max_size=40),
        "post_train_bits": BITS,
        "weights_memory_max_bytes": st.floats(min_value=5e-324, max_value=1e16),
        "tie_bits": st.booleans(),
    }
    keys = draw(st.sets(st.sampled_from(sorted(optional)), max_size=4))
    return {key: draw(optional[key]) for key in keys}


@st.composite
def plan_bodies(draw: Any) -> dict[str, Any]:
    body = {"family": FAMILY, "law": draw(st.sampled_from(["auto", "chinchilla", "precision", "fp"]))}
    body["budget"] = draw(budgets())
    if draw(st.booleans()):
        body["constraints"] = draw(constraints())
    if draw(st.booleans()):
        body["cost_model"] = draw(st.sampled_from(["linear_bits", "hardware"]))
    return body


@SETTINGS
@given(query=predict_queries())
def test_any_prediction_is_an_answer_or_names_a_field(client_rw, fitted, query):
    assert not problems([(query, client_rw.get("/api/v1/predict/", query))])


@SETTINGS
@given(body=plan_bodies())
def test_any_plan_is_an_answer_or_names_a_field(client_rw, fitted, body):
    assert not problems([(body, client_rw.post("/api/v1/plans/", body, format="json"))])


@settings(SETTINGS, max_examples=80)
@given(body=plan_bodies(), experiment=budgets(), count=st.integers(1, 10))
def test_any_suggestion_is_an_answer_or_names_a_field(client_rw, fitted, body, experiment, count):
    body = {**body, "experiment_budget": experiment, "max_suggestions": count}
    assert not problems([(body, client_rw.post("/api/v1/suggestions/", body, format="json"))])
