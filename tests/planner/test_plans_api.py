"""POST/GET /api/v1/plans/ and planner.services.plan_create against published constants and closed forms.

Fits are stored directly with published parameters (Epoch's Chinchilla refit, Kumar et al.'s Table 2), so the
planner's answers can be checked against formulas written out here, not against the planner's own output.
"""

import math

import numpy as np
import pytest

from fits.laws import RunConfig, predict_loss
from fits.models import FitScope
from planner.api.serializers import PlanSerializer
from planner.errors import NoSucceededFit, PlanInvalid
from planner.models import Plan
from planner.selectors import plan_list
from planner.services import plan_create, plan_rerun
from tests.factories import KUMAR_DATA_RANGE, FitFactory, plan_request
from tests.published import EPOCH, KUMAR

pytestmark = pytest.mark.django_db


def closed_form_n_opt(p, compute):
    """Hoffmann et al. eq. 4 (laws.md 2.2), written out here independently of the planner.

    N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)).
    """
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return g * (compute / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))


# --- Issue 6, correctness test 1: Chinchilla closed form ------------------------------------------------------


@pytest.mark.parametrize("compute", [1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25])
def test_chinchilla_plan_matches_the_closed_form(client_rw, team, compute, post_plan):
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")

    body = post_plan(client_rw, {"family": "main", "law": "chinchilla", "budget": {"flops": compute}})

    rec = body["recommendation"]
    assert rec["n_params"] == pytest.approx(closed_form_n_opt(EPOCH, compute), rel=0.01)
    assert rec["n_params"] * rec["n_tokens"] * 6 == pytest.approx(compute, rel=1e-6)
    assert (rec["weight_bits"], rec["activation_bits"], rec["kv_bits"]) == (16, 16, 16)
    assert rec["post_train_bits"] is None
    assert body["baseline"]["n_params"] == rec["n_params"]


def test_chinchilla_plan_refuses_bit_constraints(client_rw, team, post_plan):
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")
    for key, value in [("weight_bits", 8), ("post_train_bits", 4), ("bits_choices", [4, 8])]:
        body = {"family": "main", "law": "chinchilla", "budget": {"flops": 1e21}, "constraints": {key: value}}
        errors = post_plan(client_rw, body, expected=400)["errors"]
        assert key in errors["constraints"]


# --- Issue 6, correctness test 2: Kumar's compute-optimal precision ---------------------------------------------


def test_kumar_constants_give_seven_bit_training_at_every_budget(client_rw, team, post_plan):
    """laws.md 6.3: with separate gammas and the Table 2 offsets, P* = 7.00 bits at every C, D/N about 13."""
    FitFactory.create(team=team, params=KUMAR)
    ratios = []
    for compute in [1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25]:
        rec = post_plan(client_rw, {"family": "main", "budget": {"flops": compute}, "cost_model": "linear_bits"})[
            "recommendation"
        ]
        assert rec["weight_bits"] == pytest.approx(7, abs=0.5)
        assert rec["activation_bits"] == pytest.approx(7, abs=0.5)
        # Kumar's cost model: C = (6/16) N D P with P = max(weight, activation bits).
        p = max(rec["weight_bits"], rec["activation_bits"])
        assert 6 / 16 * rec["n_params"] * rec["n_tokens"] * p == pytest.approx(compute, rel=1e-6)
        ratios.append(rec["tokens_per_param"])
    assert max(ratios) / min(ratios) < 1.05


# --- Issue 6, correctness test 3: N fixed, precision grows with compute ------------------------------------------


def test_precision_rises_about_three_bits_per_decade_at_fixed_n(client_rw, team, post_plan):
    """laws.md 6.4 at N = 1e8 (Table 2 with offsets): P* = 8.1, 10.7, 13.6, 16.6 bits for C = 1e18..1e21."""
    FitFactory.create(team=team, params=KUMAR)
    choices = [round(3 + 0.05 * i, 2) for i in range(421)]  # 3.00 .. 24.00
    p_star = []
    for compute in [1e18, 1e19, 1e20, 1e21]:
        body = {
            "family": "main",
            "budget": {"flops": compute},
            "constraints": {"n_params": 100_000_000, "bits_choices": choices, "tie_bits": True},
        }
        rec = post_plan(client_rw, body)["recommendation"]
        assert rec["n_params"] == 100_000_000
        p_star.append(rec["weight_bits"])
    assert p_star == pytest.approx([8.1, 10.7, 13.6, 16.6], abs=0.15)
    assert np.all(np.abs(np.diff(p_star) - 3.0) < 0.5)  # beta * gamma_w * ln 10 = 3.06 bits per decade


def test_precision_rises_with_compute_at_fixed_n_on_the_untied_integer_grid(client_rw, team, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    bits = []
    for compute in [1e18, 1e19, 1e20]:
        body = {
            "family": "main",
            "budget": {"flops": compute},
            "constraints": {"n_params": 100_000_000, "bits_choices": list(range(3, 25))},
        }
        rec = post_plan(client_rw, body)["recommendation"]
        bits.append((rec["weight_bits"], rec["activation_bits"]))
    assert all(b2[0] - b1[0] >= 2 and b2[1] - b1[1] >= 2 for b1, b2 in zip(bits, bits[1:], strict=False))


# --- Issue 6, correctness test 4: deployment precision and memory cap -------------------------------------------


@pytest.mark.parametrize("compute", [1e19, 1e21, 1e23])
def test_four_bit_deployment_moves_the_optimum_to_more_params_fewer_tokens(client_rw, team, compute, post_plan):
    FitFactory.create(team=team, params=KUMAR)

    plain = post_plan(client_rw, {"family": "main", "budget": {"flops": compute}})
    ptq = post_plan(client_rw, {"family": "main", "budget": {"flops": compute}, "constraints": {"post_train_bits": 4}})

    # The PTQ penalty grows as D^gamma_D / N_eff^gamma_N (Kumar Eq. 9): more parameters, fewer tokens.
    rec, rec_plain = ptq["recommendation"], plain["recommendation"]
    assert rec["n_params"] > rec_plain["n_params"]
    assert rec["n_tokens"] < rec_plain["n_tokens"]
    # Deployed at 4 bits: quantized after training, or (at large budgets) trained at 4-bit weights directly.
    deployed = rec["post_train_bits"] if rec["post_train_bits"] is not None else rec["weight_bits"]
    assert deployed <= 4
    assert rec["weights_memory_bytes"] == pytest.approx(rec["n_params"] * deployed / 8)
    # The same 16-bit training plan, with and without 4-bit PTQ.
    base, base_plain = ptq["baseline"], plain["baseline"]
    assert base["post_train_bits"] == 4
    assert base["n_params"] > base_plain["n_params"]
    assert base["n_tokens"] < base_plain["n_tokens"]
    assert base["predicted_loss"] > base_plain["predicted_loss"]


@pytest.mark.parametrize("cap_bytes", [2e8, 1e9, 5e9])
@pytest.mark.parametrize("post_train_bits", [None, 4])
def test_memory_cap_is_never_exceeded(client_rw, team, cap_bytes, post_train_bits, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    constraints = {"weights_memory_max_bytes": cap_bytes}
    if post_train_bits is not None:
        constraints["post_train_bits"] = post_train_bits

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e22}, "constraints": constraints})

    for config in [body["recommendation"], body["baseline"], *body["alternatives"]]:
        deployed = config["post_train_bits"] or config["weight_bits"]
        assert config["n_params"] * deployed / 8 <= cap_bytes
        assert config["weights_memory_bytes"] <= cap_bytes


# --- PTQ at equal widths: Kumar's robustness product is not exploited --------------------------------------------


def test_the_law_engine_zeroes_the_ptq_penalty_when_kv_bits_equal_the_deployment_width():
    """The quirk the planner guards against: with kv_bits = post_train_bits the PTQ term vanishes."""
    base = predict_loss(
        "precision", KUMAR, RunConfig(n_params=1e9, n_tokens=1e11, weight_bits=8, activation_bits=8, kv_bits=4)
    )
    at_equal = predict_loss(
        "precision",
        KUMAR,
        RunConfig(n_params=1e9, n_tokens=1e11, weight_bits=8, activation_bits=8, kv_bits=4, post_train_bits=4),
    )
    above = predict_loss(
        "precision",
        KUMAR,
        RunConfig(n_params=1e9, n_tokens=1e11, weight_bits=8, activation_bits=8, kv_bits=5, post_train_bits=4),
    )
    assert at_equal.item() == pytest.approx(base.item(), rel=1e-12)
    above_base = predict_loss(
        "precision", KUMAR, RunConfig(n_params=1e9, n_tokens=1e11, weight_bits=8, activation_bits=8, kv_bits=5)
    )
    assert above.item() > above_base.item()


@pytest.mark.parametrize("compute", [1e19, 1e21, 1e23])
def test_ptq_plans_never_train_kv_or_activations_at_the_deployment_width(client_rw, team, compute, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    constraints = {"post_train_bits": 4, "bits_choices": [4, 5, 6, 7, 8, 16]}

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": compute}, "constraints": constraints})

    # The 16-bit baseline is quantized after training, so every compute checks at least one PTQ configuration.
    assert body["baseline"]["post_train_bits"] == 4
    for config in [body["recommendation"], body["baseline"], *body["alternatives"]]:
        if config["post_train_bits"] is not None:  # quantized after training, to the deployment width
            assert config["post_train_bits"] == 4
            assert config["weight_bits"] > 4
            assert config["kv_bits"] > 4
            assert config["activation_bits"] > 4
        else:  # no PTQ: trained at (or below) the deployment width and deployed as trained
            assert config["weight_bits"] <= 4


def test_fixed_kv_bits_at_the_deployment_width_is_a_400_naming_kv_bits(client_rw, team, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    constraints = {"weight_bits": 8, "kv_bits": 4, "post_train_bits": 4}
    body = {"family": "main", "budget": {"flops": 1e21}, "constraints": constraints}
    assert "kv_bits" in post_plan(client_rw, body, expected=400)["errors"]["constraints"]


# --- The stored plan: shape, uncertainty, warnings --------------------------------------------------------------


def test_plan_response_lists_the_contract_fields(client_rw, team, post_plan):
    fit = FitFactory.create(team=team, params=KUMAR)

    body = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e21}})

    assert {
        "id",
        "family",
        "law",
        "budget",
        "constraints",
        "cost_model",
        "recommendation",
        "baseline",
        "alternatives",
        "optimum_spread",
        "fit",
        "warnings",
    } <= set(body)
    assert (body["family"], body["law"], body["cost_model"]) == ("main", "precision", "linear_bits")
    assert body["budget"] == {"flops": 1e21}
    assert body["fit"] == {"id": fit.pk, "law": "precision", "version": 1}
    rec = body["recommendation"]
    assert set(rec) == {
        "n_params",
        "n_tokens",
        "tokens_per_param",
        "weight_bits",
        "activation_bits",
        "kv_bits",
        "post_train_bits",
        "predicted_loss",
        "predicted_loss_interval",
        "compute_flops",
        "weights_memory_bytes",
    }
    assert isinstance(rec["n_params"], int)
    assert isinstance(rec["n_tokens"], int)
    lo, hi = rec["predicted_loss_interval"]
    assert lo <= rec["predicted_loss"] <= hi
    # The 16-bit baseline at the same budget is worse than the recommended low-precision plan (laws.md 6.3).
    base = body["baseline"]
    assert (base["weight_bits"], base["activation_bits"]) == (16, 16)
    assert base["n_params"] * base["n_tokens"] * 6 == pytest.approx(1e21, rel=1e-6)
    assert body["loss_improvement_over_baseline"] == pytest.approx(base["predicted_loss"] - rec["predicted_loss"])
    assert body["loss_improvement_over_baseline"] > 0
    assert 1 <= len(body["alternatives"]) <= 5
    spread = body["optimum_spread"]
    assert spread["n_draws"] == 200
    assert spread["n_params"][0] <= rec["n_params"] <= spread["n_params"][1]
    assert spread["weight_bits"][0] <= rec["weight_bits"] <= spread["weight_bits"][1]
    assert PlanSerializer(Plan.objects.get(pk=body["id"])).data["recommendation"] == rec  # stored as answered


def test_extrapolation_warning_says_how_many_times_beyond_the_data(client_rw, team, post_plan):
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")

    body = post_plan(client_rw, {"family": "main", "law": "chinchilla", "budget": {"flops": 1e25}})

    rec = body["recommendation"]
    n_ratio = rec["n_params"] / KUMAR_DATA_RANGE["n_params_max"]
    d_ratio = rec["n_tokens"] / KUMAR_DATA_RANGE["n_tokens_max"]
    assert n_ratio > 10
    assert any(w.startswith("extrapolation: n_params") and f"{n_ratio:.1f}x" in w for w in body["warnings"])
    assert any(w.startswith("extrapolation: n_tokens") and f"{d_ratio:.1f}x" in w for w in body["warnings"])


def test_no_extrapolation_warning_inside_the_data(client_rw, team, post_plan):
    FitFactory.create(
        team=team,
        params=EPOCH,
        law="chinchilla",
        data_range={**KUMAR_DATA_RANGE, "n_params_max": 1e12, "n_tokens_max": 1e14},
    )
    body = post_plan(client_rw, {"family": "main", "law": "chinchilla", "budget": {"flops": 1e20}})
    assert not [w for w in body["warnings"] if w.startswith("extrapolation")]


def test_stale_fit_and_newer_failed_fit_are_warned(client_rw, team, post_plan):
    fit = FitFactory.create(team=team, params=KUMAR)
    FitFactory.create(team=team, version=2, failed=True)
    FitScope.objects.create(team=team, family="main", law="precision", fingerprint="changed-since")

    warnings = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e21}})["warnings"]

    assert any(w.startswith("stale fit") for w in warnings)
    assert any(w.startswith("a newer fit failed: v2") and f"uses v{fit.version}" in w for w in warnings)


def test_bound_warning_when_the_optimum_sits_on_the_smallest_allowed_width(client_rw, team, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    body = {"family": "main", "budget": {"flops": 1e22}, "constraints": {"bits_choices": [8, 16], "kv_bits": 16}}
    warnings = post_plan(client_rw, body)["warnings"]
    assert any("optimum on a search bound" in w and "smallest allowed width" in w for w in warnings)


def test_gpu_hours_budget_converts_at_the_16_bit_peak_and_mfu(client_rw, team, post_plan):
    """laws.md 7.1: FLOPs = hours * 3600 * dense 16-bit peak * MFU; H100 989.4 TF, 40% MFU by default."""
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")

    body = post_plan(
        client_rw, {"family": "main", "law": "chinchilla", "budget": {"gpu_hours": 1000, "hardware": "H100"}}
    )
    assert body["budget_flops"] == pytest.approx(1000 * 3600 * 989.4e12 * 0.40, rel=1e-9)
    assert body["budget"] == {"gpu_hours": 1000, "hardware": "h100"}
    assert body["hardware"] == "h100"

    body = post_plan(
        client_rw,
        {"family": "main", "law": "chinchilla", "budget": {"gpu_hours": 1000, "hardware": "b200", "mfu": 0.3}},
    )
    assert body["budget_flops"] == pytest.approx(1000 * 3600 * 2.25e15 * 0.30, rel=1e-9)


def test_hardware_cost_model_on_h100_trains_at_8_bits(client_rw, team, post_plan):
    """On H100, 8-bit runs at twice the 16-bit rate and 4-bit gets nothing more: 7 bits cost as much as 8."""
    FitFactory.create(team=team, params=KUMAR)
    body = post_plan(
        client_rw,
        {"family": "main", "budget": {"gpu_hours": 10_000, "hardware": "h100"}, "cost_model": "hardware"},
    )
    rec = body["recommendation"]
    assert max(rec["weight_bits"], rec["activation_bits"]) == 8
    # The 8-bit plan pays 6*N*D at the 16-bit/8-bit peak ratio (989.4 / 1978.9 TF) and spends the whole budget.
    assert rec["compute_flops"] == pytest.approx(6 * rec["n_params"] * rec["n_tokens"] * 989.4 / 1978.9, rel=1e-6)
    assert rec["compute_flops"] == pytest.approx(body["budget_flops"], rel=1e-6)


# --- Contract: errors, access, lists ----------------------------------------------------------------------------


def test_no_succeeded_fit_is_409(client_rw, team):
    FitFactory.create(team=team, failed=True)
    response = client_rw.post("/api/v1/plans/", {"family": "main", "budget": {"flops": 1e21}}, format="json")
    assert response.status_code == 409
    assert "detail" in response.json()["errors"]
    assert not Plan.objects.exists()


def test_a_fit_of_the_other_law_is_not_used_when_a_law_is_named(client_rw, team):
    FitFactory.create(team=team, params=EPOCH, law="chinchilla")
    body = {"family": "main", "law": "precision", "budget": {"flops": 1e21}}
    response = client_rw.post("/api/v1/plans/", body, format="json")
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"budget": {"flops": 1e21}}, ("family",)),
        ({"family": "main"}, ("budget",)),
        ({"family": "main", "budget": {"flops": -1}}, ("budget", "flops")),
        ({"family": "main", "budget": {"flops": "1e21"}}, ("budget", "flops")),
        ({"family": "main", "budget": {"flops": 1e21, "gpu_hours": 10}}, ("budget", "non_field_errors")),
        ({"family": "main", "budget": {}}, ("budget", "non_field_errors")),
        ({"family": "main", "budget": {"gpu_hours": 100}}, ("budget", "hardware")),
        ({"family": "main", "budget": {"gpu_hours": 100, "hardware": "tpu-v9"}}, ("budget", "hardware")),
        ({"family": "main", "budget": {"gpu_hours": 100, "hardware": "h100", "mfu": 1.5}}, ("budget", "mfu")),
        ({"family": "main", "budget": {"flops": 1e21, "dollars": 5}}, ("budget", "dollars")),
        ({"family": "main", "budget": {"flops": 1e21}, "cost_model": "cubic"}, ("cost_model",)),
        ({"family": "main", "budget": {"flops": 1e21}, "law": "kaplan"}, ("law",)),
        ({"family": "main", "budget": {"flops": 1e21}, "extra": 1}, ("extra",)),
        ({"family": "main", "budget": {"flops": 1e21}, "id": 5}, ("id",)),
        ({"family": "main", "budget": {"flops": 1e21}, "constraints": {"n_param": 1e9}}, ("constraints", "n_param")),
        (
            {"family": "main", "budget": {"flops": 1e21}, "constraints": {"weight_bits": 0.5}},
            ("constraints", "weight_bits"),
        ),
        (
            {"family": "main", "budget": {"flops": 1e21}, "constraints": {"bits_choices": []}},
            ("constraints", "bits_choices"),
        ),
        (
            {"family": "main", "budget": {"flops": 1e21}, "constraints": {"n_params": 10**9, "n_params_max": 10**8}},
            ("constraints", "n_params"),
        ),
        # 3-bit activations are outside Kumar's law (factor 1 - exp(-3/2.2102 + 1.4072) < 0).
        (
            {"family": "main", "budget": {"flops": 1e21}, "constraints": {"activation_bits": 3}},
            ("constraints", "activation_bits"),
        ),
    ],
)
def test_bad_input_is_400_naming_the_field(client_rw, team, body, path, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    errors = post_plan(client_rw, body, expected=400)["errors"]
    for key in path:
        assert key in errors, errors
        errors = errors[key]
    assert not Plan.objects.exists()


def test_ptq_on_a_fit_without_a_ptq_term_is_400(client_rw, team, post_plan):
    FitFactory.create(
        team=team,
        params={k: v for k, v in KUMAR.items() if k not in {"C_T", "gamma_D", "gamma_N", "gamma_post", "n_post"}},
    )
    body = {"family": "main", "budget": {"flops": 1e21}, "constraints": {"post_train_bits": 4}}
    assert "post_train_bits" in post_plan(client_rw, body, expected=400)["errors"]["constraints"]


def test_read_only_key_cannot_plan(client_ro, team):
    FitFactory.create(team=team, params=KUMAR)
    assert (
        client_ro.post("/api/v1/plans/", {"family": "main", "budget": {"flops": 1e21}}, format="json").status_code
        == 403
    )


def test_read_only_key_can_list_and_read(client_rw, client_ro, team, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    plan_id = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e21}})["id"]
    assert client_ro.get(f"/api/v1/plans/{plan_id}/").status_code == 200
    assert [p["id"] for p in client_ro.get("/api/v1/plans/").json()["results"]] == [plan_id]


def test_plans_of_another_team_are_404_and_unlisted(client_rw, other_client, team, other_team, post_plan):
    FitFactory.create(team=team, params=KUMAR)
    plan_id = post_plan(client_rw, {"family": "main", "budget": {"flops": 1e21}})["id"]
    assert other_client.get(f"/api/v1/plans/{plan_id}/").status_code == 404
    assert other_client.get("/api/v1/plans/").json()["results"] == []
    # Another team's fit of the same family name is not used either: 409 for them.
    response = other_client.post("/api/v1/plans/", {"family": "main", "budget": {"flops": 1e21}}, format="json")
    assert response.status_code == 409


def test_list_is_newest_first_cursor_paginated_and_filters_by_family(client_rw, team, post_plan):
    FitFactory.create(team=team, params=KUMAR, family="a")
    FitFactory.create(team=team, params=EPOCH, family="b", law="chinchilla")
    ids_a = [post_plan(client_rw, {"family": "a", "budget": {"flops": c}})["id"] for c in (1e20, 1e21, 1e22)]
    id_b = post_plan(client_rw, {"family": "b", "law": "chinchilla", "budget": {"flops": 1e21}})["id"]

    page = client_rw.get("/api/v1/plans/?page_size=2").json()
    assert [p["id"] for p in page["results"]] == [id_b, ids_a[2]]
    assert page["next"] is not None
    rest = client_rw.get(page["next"]).json()
    assert [p["id"] for p in rest["results"]] == [ids_a[1], ids_a[0]]
    assert [p["id"] for p in client_rw.get("/api/v1/plans/?family=b").json()["results"]] == [id_b]
    detail = client_rw.get(f"/api/v1/plans/{id_b}/").json()
    assert detail["fit"]["law"] == "chinchilla"


def test_list_query_count_does_not_grow_with_plans(client_rw, team, django_assert_max_num_queries):
    fit = FitFactory.create(team=team, params=KUMAR)
    first = plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21}))
    Plan.objects.bulk_create(
        [
            Plan(
                team=team,
                family="main",
                law="precision",
                fit=fit,
                budget=first.budget,
                budget_flops=1e21,
                recommendation=first.recommendation,
                baseline=first.baseline,
                alternatives=first.alternatives,
                optimum_spread=first.optimum_spread,
                warnings=first.warnings,
            )
            for _ in range(50)
        ]
    )
    with django_assert_max_num_queries(3):  # key lookup, key last-used update at most, one page query
        response = client_rw.get("/api/v1/plans/?page_size=100")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 51


def test_schema_still_renders_with_plans(anonymous):
    response = anonymous.get("/api/v1/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/v1/plans/" in text
    assert "/api/v1/plans/{id}/" in text
    assert "PlanCreateInput" in text


# --- Services: the admin's entry points ------------------------------------------------------------------------


def test_plan_create_raises_no_succeeded_fit(team):
    with pytest.raises(NoSucceededFit):
        plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21}))


def test_plan_create_rejects_unknown_keys_naming_them(team):
    FitFactory.create(team=team, params=KUMAR)
    with pytest.raises(PlanInvalid) as info:
        plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21}, constraints={"n_parms": 5}))
    assert info.value.errors == {"constraints": {"n_parms": ["Unknown field."]}}


def test_plan_rerun_uses_the_current_fit_and_keeps_the_original(team):
    v1 = FitFactory.create(team=team, params=KUMAR)
    plan = plan_create(
        team=team, request=plan_request(family="main", budget={"flops": 1e21}, constraints={"post_train_bits": 4})
    )
    v2 = FitFactory.create(team=team, params={**KUMAR, "E": 2.5}, version=2)

    again = plan_rerun(plan=plan)

    assert again.pk != plan.pk
    assert (plan.fit_id, again.fit_id) == (v1.pk, v2.pk)
    assert (again.budget, again.constraints, again.cost_model) == (plan.budget, plan.constraints, plan.cost_model)
    # E shifts every loss by the same amount and does not move the optimum.
    assert again.recommendation["n_params"] == plan.recommendation["n_params"]
    assert again.recommendation["predicted_loss"] == pytest.approx(plan.recommendation["predicted_loss"] - 0.2648)


def test_a_fit_cited_by_a_plan_cannot_be_deleted_alone_but_the_team_can(team):
    from django.db.models import RestrictedError

    fit = FitFactory.create(team=team, params=KUMAR)
    plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21}))
    with pytest.raises(RestrictedError):
        fit.delete()
    team.delete()
    assert not Plan.objects.exists()


def test_a_dimension_the_family_never_varied_is_held_at_its_trained_width(team):
    """A fit whose KV bits never varied holds that factor at 1: the planner keeps KV at the trained 16 bits."""
    params = {k: v for k, v in KUMAR.items() if k not in {"gamma_kv", "n_kv"}}
    FitFactory.create(
        team=team, params=params, data_range={**KUMAR_DATA_RANGE, "kv_bits_min": 16.0, "kv_bits_max": 16.0}
    )
    plan = plan_create(team=team, request=plan_request(family="main", budget={"flops": 1e21}))
    assert plan.recommendation["kv_bits"] == 16
    assert math.isfinite(plan.recommendation["predicted_loss"])


def test_plan_list_selector_is_team_scoped_and_filters_by_family(team, other_team):
    FitFactory.create(team=team, params=KUMAR, family="a")
    FitFactory.create(team=team, params=KUMAR, family="b")
    FitFactory.create(team=other_team, params=KUMAR, family="a")
    mine_a = plan_create(team=team, request=plan_request(family="a", budget={"flops": 1e21}))
    mine_b = plan_create(team=team, request=plan_request(family="b", budget={"flops": 1e21}))
    plan_create(team=other_team, request=plan_request(family="a", budget={"flops": 1e21}))

    assert [p.pk for p in plan_list(team=team)] == [mine_b.pk, mine_a.pk]
    assert [p.pk for p in plan_list(team=team, family="a")] == [mine_a.pk]


def test_a_plan_on_a_law_whose_fit_failed_names_the_failed_fit_and_why(client_rw, team):
    failed = FitFactory.create(team=team, family="main", law="precision", failed=True)
    response = client_rw.post(
        "/api/v1/plans/", {"family": "main", "law": "precision", "budget": {"flops": 1e21}}, format="json"
    )
    assert response.status_code == 409
    (message,) = response.json()["errors"]["detail"]
    assert f"The newest failed fit is fit {failed.pk} (version 1): FitFailed: fewer than 3 distinct N." in message
