"""The hand-written matrix of predict, plans and suggestions parameters against a family with succeeded fits of
every law: each answer is a 2xx, or a 4xx whose errors name a field of the request, never a 5xx.

Every optional parameter is varied on its own from a valid baseline (sizes, budgets and caps at their limits
and beyond), and PTQ bits are crossed with training bits (below, at and above them) and with fp formats.
"""

import itertools
from typing import Any

import pytest

from runs.models import MAX_N_PARAMS, MAX_N_TOKENS
from tests.hardening.fitted import FAMILY, problems

pytestmark = pytest.mark.django_db

LAWS = ["chinchilla", "precision", "fp"]
SIZES = [1, 30_000_000, 1_700_000_000, MAX_N_PARAMS]
TOKENS = [1, 26_000_000_000, MAX_N_TOKENS]
TRAINING_BITS = [(16, 16, 16), (8, 8, 8), (4, 4, 4), (3, 16, 16), (16, 4, 16), (1, 1, 1), (32, 32, 32)]
POST_BITS = [None, 1, 3, 4, 8, 12, 16, 31.5]
FORMATS = [(1, 0), (2, 1), (4, 3), (5, 2), (8, 7), (8, 23), (1, 23)]


def predict_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for law in LAWS:
        base = {"family": FAMILY, "law": law}
        cases += [{**base, "n_params": n, "n_tokens": d} for n, d in itertools.product(SIZES, TOKENS)]
        for (w, a, kv), post in itertools.product(TRAINING_BITS, POST_BITS):
            case = {**base, "n_params": 1_700_000_000, "n_tokens": 26_000_000_000}
            case |= {"weight_bits": w, "activation_bits": a, "kv_bits": kv}
            cases.append(case if post is None else {**case, "post_train_bits": post})
        for (e, m), width in itertools.product(FORMATS, [4, 8, 16]):
            cases.append(
                {**base, "n_params": 10**8, "n_tokens": 10**10, "weight_bits": width, "activation_bits": width}
                | {"exponent_bits": e, "mantissa_bits": m}
            )
    return cases


BUDGETS: list[dict[str, Any]] = [
    {"flops": f} for f in (5e-324, 1e-300, 1.0, 6.0, 7.0, 1e6, 1e12, 1e18, 1e22, 1e26, 1e30, 1e35)
] + [
    {"gpu_hours": h, "hardware": hw} | ({} if mfu is None else {"mfu": mfu})
    for h, hw, mfu in [
        (1e-300, "h100", None),
        (1e-6, "a100", None),
        (1.0, "h100", 1e-9),
        (1e4, "h200", None),
        (1e6, "b200", 1.0),
        (1e15, "h100", None),
    ]
]
CONSTRAINTS: list[dict[str, Any]] = [
    *[{"n_params": n} for n in (1, 10**6, 10**9, MAX_N_PARAMS)],
    *[{"n_params_max": n} for n in (1, 10**6, 10**12)],
    *[{"n_tokens_max": d} for d in (1, 10**9, MAX_N_TOKENS)],
    *[{key: b} for key in ("weight_bits", "activation_bits", "kv_bits") for b in (1, 3, 4, 16, 32)],
    *[{"bits_choices": c} for c in ([1], [4, 8], [1.5, 2.5], list(range(1, 33)))],
    {"bits_choices": list(range(1, 33)), "tie_bits": True},
    {"tie_bits": True},
    {"tie_bits": False},
    {"tie_bits": True, "weight_bits": 8, "activation_bits": 4},
    *[{"weights_memory_max_bytes": m} for m in (1.0, 1e9, 1e16)],
    {"n_params": 10**9, "n_params_max": 10**6},
    *[
        # PTQ below, at and above the training bits
        {"weight_bits": w, "activation_bits": w, "kv_bits": w, "post_train_bits": p}
        for w, p in itertools.product((4, 8, 16), (1, 3, 4, 8, 16, 32))
    ],
    *[{"post_train_bits": p} for p in (1, 4, 8, 16)],
]


def plan_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for law in ["auto", *LAWS]:
        base = {"family": FAMILY, "law": law, "budget": {"flops": 1e22}}
        cases += [{**base, "budget": b} for b in BUDGETS]
        cases += [{**base, "constraints": c} for c in CONSTRAINTS]
        cases += [{**base, "cost_model": "hardware", "budget": b} for b in BUDGETS[-6:]]
        cases += [{**base, "cost_model": "hardware"}]
    return cases


def suggestion_cases() -> list[dict[str, Any]]:
    experiment = [{"flops": f} for f in (5e-324, 1.0, 1e12, 1e18, 1e19, 1e22, 1e35)] + [
        {"gpu_hours": 1e-300, "hardware": "h100"},
        {"gpu_hours": 10.0, "hardware": "h100"},
    ]
    cases = []
    for case in plan_cases():
        cases.append({**case, "experiment_budget": {"flops": 1e19}})
    for law in ["auto", *LAWS]:
        base = {"family": FAMILY, "law": law, "budget": {"flops": 1e22}}
        cases += [{**base, "experiment_budget": e} for e in experiment]
        cases += [{**base, "experiment_budget": {"flops": 1e19}, "max_suggestions": k} for k in (1, 10, 11, 0)]
    return cases


@pytest.mark.parametrize("law", LAWS)
def test_predict_matrix(client_rw, fitted, law):
    cases = [c for c in predict_cases() if c["law"] == law]
    responses = [(c, client_rw.get("/api/v1/predict/", c)) for c in cases]
    assert not problems(responses)
    assert sum(r.status_code == 200 for _, r in responses) > len(responses) // 4  # the matrix is not all refusals


@pytest.mark.parametrize("law", ["auto", *LAWS])
def test_plans_matrix(client_rw, fitted, law):
    cases = [c for c in plan_cases() if c["law"] == law]
    responses = [(c, client_rw.post("/api/v1/plans/", c, format="json")) for c in cases]
    assert not problems(responses)
    assert sum(r.status_code == 201 for _, r in responses) > len(responses) // 4


@pytest.mark.parametrize("law", ["auto", *LAWS])
def test_suggestions_matrix(client_rw, fitted, law):
    cases = [c for c in suggestion_cases() if c["law"] == law]
    responses = [(c, client_rw.post("/api/v1/suggestions/", c, format="json")) for c in cases]
    assert not problems(responses)
    assert sum(r.status_code == 200 for _, r in responses) > len(responses) // 4
