"""Plans, predictions and suggestions on the floating-point law of Sun et al. 2025 (law "fp").

The fit is stored with Sun et al.'s published constants (tests/published.py; 128-element scaling blocks), so
the checks are against the paper's claims: the best format at a width is E2M1 / E4M3 / E8M7 at 4 / 8 / 16 bits
(written out here, not read from the planner), and the cost-optimal precision stays within 4-8 bits and does
not fall as compute grows (docs/laws.md 10.2).
"""

import itertools

import numpy as np
import pytest

from tests.factories import FitFactory
from tests.published import SUN

pytestmark = pytest.mark.django_db

SUN_OURS = {**SUN, "gamma": SUN["gamma"] / np.log2(128.0)}
FP_RANGE = {
    "n_params_min": 41e6,
    "n_params_max": 679e6,
    "n_tokens_min": 1e10,
    "n_tokens_max": 1e11,
    "weight_bits_min": 4.0,
    "weight_bits_max": 16.0,
    "activation_bits_min": 4.0,
    "activation_bits_max": 16.0,
    "kv_bits_min": 16.0,
    "kv_bits_max": 16.0,
    "exponent_bits_min": 1.0,
    "exponent_bits_max": 8.0,
    "mantissa_bits_min": 1.0,
    "mantissa_bits_max": 7.0,
}


@pytest.fixture
def fp_fit(team):
    return FitFactory.create(team=team, params=SUN_OURS, law="fp", data_range=FP_RANGE)


def best_split(total_bits):
    """The integer (E, M), E >= 1, E + M + 1 = total, with the largest (E + 0.5)^delta (M + 0.5)^nu."""
    splits = [(e, total_bits - 1 - e) for e in range(1, int(total_bits))]
    return max(splits, key=lambda s: SUN["delta"] * np.log(s[0] + 0.5) + SUN["nu"] * np.log(s[1] + 0.5))


def sun_loss(n, d, e, m):
    p = SUN_OURS
    return (
        p["E"]
        + p["A"] / n ** p["alpha"]
        + p["B"] / d ** p["beta"]
        + d ** p["beta"] / n ** p["alpha"] / (p["gamma"] * (e + 0.5) ** p["delta"] * (m + 0.5) ** p["nu"])
    )


def test_the_paper_layouts_are_the_best_splits():
    assert [best_split(b) for b in (4, 8, 16)] == [(2, 1), (4, 3), (8, 7)]


def test_a_plan_on_the_fp_law_names_its_format(client_rw, fp_fit, post_plan):
    body = post_plan(client_rw, {"family": "main", "law": "fp", "budget": {"flops": 1e22}})

    rec = body["recommendation"]
    assert body["fit"]["law"] == "fp"
    assert rec["weight_bits"] == rec["activation_bits"] == rec["kv_bits"]
    assert rec["post_train_bits"] is None
    assert (rec["exponent_bits"], rec["mantissa_bits"]) == best_split(int(rec["weight_bits"]))
    assert rec["predicted_loss"] == pytest.approx(
        sun_loss(rec["n_params"], rec["n_tokens"], rec["exponent_bits"], rec["mantissa_bits"]), rel=1e-6
    )
    assert (body["baseline"]["exponent_bits"], body["baseline"]["mantissa_bits"]) == (8, 7)  # bf16


def test_cost_optimal_precision_stays_within_4_to_8_bits_and_grows_with_compute(client_rw, fp_fit, post_plan):
    # Sun et al.: over D = 0.1T-100T the cost-optimal precision rises with compute but stays in 4-8 bits.
    widths = []
    for flops in (1e22, 1e23, 1e24, 1e25):
        rec = post_plan(client_rw, {"family": "main", "law": "fp", "budget": {"flops": flops}})["recommendation"]
        assert 1e11 <= rec["n_tokens"] <= 1e14
        widths.append(rec["weight_bits"])
    assert all(4 <= w <= 8 for w in widths), widths
    assert all(a <= b for a, b in itertools.pairwise(widths)), widths


def test_a_fixed_width_plans_in_that_width_with_the_best_layout(client_rw, fp_fit, post_plan):
    body = post_plan(
        client_rw, {"family": "main", "law": "fp", "budget": {"flops": 1e21}, "constraints": {"weight_bits": 8}}
    )
    rec = body["recommendation"]
    assert (rec["weight_bits"], rec["exponent_bits"], rec["mantissa_bits"]) == (8.0, 4, 3)


@pytest.mark.parametrize(
    ("constraints", "field"),
    [
        ({"post_train_bits": 4}, "post_train_bits"),
        ({"activation_bits": 8}, "activation_bits"),
        ({"kv_bits": 8}, "kv_bits"),
        ({"weight_bits": 1.5}, "weight_bits"),
        ({"bits_choices": [1, 4]}, "bits_choices"),
    ],
)
def test_what_the_fp_law_cannot_plan_is_a_400_naming_the_field(client_rw, fp_fit, constraints, field, post_plan):
    body = post_plan(
        client_rw,
        {"family": "main", "law": "fp", "budget": {"flops": 1e21}, "constraints": constraints},
        expected=400,
    )
    assert field in body["errors"]["constraints"], body


def test_predict_reads_the_format_and_refuses_half_of_it(client_rw, fp_fit):
    query = {"family": "main", "law": "fp", "n_params": 10**8, "n_tokens": 2 * 10**10, "weight_bits": 6}
    explicit = client_rw.get("/api/v1/predict/", {**query, "exponent_bits": 3, "mantissa_bits": 2})
    assert explicit.status_code == 200, explicit.json()
    assert explicit.json()["loss"] == pytest.approx(sun_loss(1e8, 2e10, 3, 2), rel=1e-9)

    by_width = client_rw.get("/api/v1/predict/", query).json()  # 6 bits: the best split, E3M2
    assert by_width["loss"] == pytest.approx(sun_loss(1e8, 2e10, *best_split(6)), rel=1e-9)

    half = client_rw.get("/api/v1/predict/", {**query, "exponent_bits": 3})
    assert half.status_code == 400
    assert "mantissa_bits" in half.json()["errors"]
    ptq = client_rw.get("/api/v1/predict/", {**query, "post_train_bits": 4})
    assert ptq.status_code == 400
    assert "fp law" in ptq.json()["errors"]["post_train_bits"][0]


def test_suggestions_on_the_fp_law_say_which_format_to_train_in(client_rw, fp_fit):
    response = client_rw.post(
        "/api/v1/suggestions/",
        {"family": "main", "law": "fp", "budget": {"flops": 1e22}, "experiment_budget": {"flops": 1e20}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["suggestions"]
    for run in body["suggestions"]:
        assert run["weight_bits"] == run["activation_bits"] == run["kv_bits"]
        assert (run["exponent_bits"], run["mantissa_bits"]) == best_split(int(run["weight_bits"]))


def test_a_plan_on_the_fp_law_does_not_warn_about_the_kv_width(client_rw, fp_fit, post_plan):
    # The fp runs trained their KV cache at 16 bits; the fp law does not read it, so a 5-bit plan is no
    # extrapolation in KV bits (the weights' width is the format, and is inside the data).
    body = post_plan(client_rw, {"family": "main", "law": "fp", "budget": {"flops": 1e22}})
    assert body["recommendation"]["kv_bits"] < 16
    assert not any("kv_bits" in w or "activation_bits" in w for w in body["warnings"]), body["warnings"]
