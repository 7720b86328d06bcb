"""Every plan and suggestion request does bounded work: inputs that would take minutes or gigabytes are either
computed in memory linear in their size or refused with a 400 naming the field (bench/request_caps.py times them).
"""

import tracemalloc

import numpy as np
import pytest

from planner.allocation import MAX_BIT_CONFIGURATIONS
from planner.suggestions import Candidates, Target, suggest_runs
from tests.hardening.fitted import FAMILY

pytestmark = pytest.mark.django_db

WIDE = [round(1 + 15 * i / 511, 6) for i in range(512)]


def _reference_greedy(cov, noise_var, cost, budget, k, per_flop):
    """The selection written out on the full covariance matrix (the textbook form of planner.suggestions)."""
    cov = cov.copy()
    chosen, gains, spent = [], [], 0.0
    available = np.ones(cov.shape[0] - 1, dtype=bool)
    for _ in range(k):
        gain = cov[0, 1:] ** 2 / (np.diag(cov)[1:] + noise_var)
        ok = available & (spent + cost <= budget * (1 + 1e-9)) & (gain > 0)
        if not ok.any():
            break
        j = int(np.argmax(np.where(ok, gain / cost if per_flop else gain, -np.inf)))
        chosen.append(j)
        gains.append(float(gain[j]))
        spent += float(cost[j])
        available[j] = False
        col = cov[:, j + 1].copy()
        cov -= np.outer(col, col) / (cov[j + 1, j + 1] + noise_var[j])
    return chosen, gains


@pytest.mark.parametrize("seed", range(5))
def test_the_low_rank_greedy_picks_what_the_full_covariance_picks(seed):
    from planner.suggestions import _greedy

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((60, 4))
    joint = latent @ rng.standard_normal((4, 300)) + 0.1 * rng.standard_normal((60, 300))
    noise = 0.05 * rng.random(299)
    cost = rng.uniform(1.0, 10.0, 299)
    for per_flop in (True, False):
        expected = _reference_greedy(np.cov(joint, rowvar=False), noise, cost, 25.0, 8, per_flop)
        chosen, gains = _greedy(joint - joint.mean(axis=0), noise, cost, 25.0, 8, per_flop)
        assert chosen == expected[0]
        assert gains == pytest.approx(expected[1], rel=1e-9)


def test_suggestions_memory_is_linear_in_the_number_of_candidates():
    # 6,000 candidates x 50 draws: the full covariance alone would be 6,000^2 doubles (288 MB).
    m, s = 6_000, 50
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 1.5, s)

    def draws_fn(n, d, w, a, kv, post):
        return 2.0 + scale[:, None] * 1e3 / np.asarray(n, dtype=np.float64) ** 0.3 + 0.0 * np.asarray(d)

    n = np.geomspace(1e6, 1e9, m)
    candidates = Candidates(
        n_params=n,
        n_tokens=20 * n,
        weight_bits=np.full(m, 16.0),
        activation_bits=np.full(m, 16.0),
        kv_bits=np.full(m, 16.0),
        cost_flops=120 * n**2,
    )
    target = Target(n_params=1e10, n_tokens=2e11, weight_bits=16, activation_bits=16, kv_bits=16)
    tracemalloc.start()
    result = suggest_runs(draws_fn, target, candidates, experiment_flops=1e25, max_suggestions=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.n_candidates == m
    assert len(result.suggestions) >= 1
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_suggestions_over_512_tied_widths_answer_from_an_evenly_thinned_grid(client_rw, fitted):
    body = {
        "family": FAMILY,
        "law": "precision",
        "budget": {"flops": 1e22},
        "experiment_budget": {"flops": 1e19},
        "constraints": {"tie_bits": True, "bits_choices": WIDE},
    }
    response = client_rw.post("/api/v1/suggestions/", body, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert any("512 bit configurations: candidate runs were drawn from" in w for w in body["warnings"])
    assert 1_000 < body["n_candidates"] <= 128 * 16 * 7
    assert {(s["weight_bits"], s["activation_bits"]) for s in body["suggestions"]}  # suggestions were made


@pytest.mark.parametrize("path", ["/api/v1/plans/", "/api/v1/suggestions/"])
def test_an_untied_grid_past_the_cap_is_refused_naming_bits_choices_before_any_work(client_rw, fitted, path):
    widths = WIDE[::18]  # 29 widths over 1-16 bits: 29^3 = 24,389 untied configurations
    assert len(widths) ** 3 > MAX_BIT_CONFIGURATIONS >= len(widths) ** 2
    body = {"family": FAMILY, "law": "precision", "budget": {"flops": 1e22}, "constraints": {"bits_choices": widths}}
    if path.endswith("suggestions/"):
        body["experiment_budget"] = {"flops": 1e19}
    response = client_rw.post(path, body, format="json")
    assert response.status_code == 400
    assert "bits_choices" in response.json()["errors"]["constraints"]
    fixed = {**body, "constraints": {"bits_choices": widths, "kv_bits": 16}}  # two free axes: within the cap
    assert client_rw.post(path, fixed, format="json").status_code in (200, 201)


@pytest.mark.parametrize("law", ["auto", "chinchilla", "precision", "fp"])
@pytest.mark.parametrize(
    ("budget", "field"),
    [({"flops": 5e-324}, "flops"), ({"flops": 5.9}, "flops"), ({"gpu_hours": 1e-300, "hardware": "h100"}, "gpu_hours")],
)
def test_a_budget_too_small_to_plan_is_400_naming_it(client_rw, fitted, law, budget, field):
    plan = client_rw.post("/api/v1/plans/", {"family": FAMILY, "law": law, "budget": budget}, format="json")
    assert plan.status_code == 400, plan.content
    assert field in plan.json()["errors"]["budget"]
    body = {"family": FAMILY, "law": law, "budget": {"flops": 1e22}, "experiment_budget": budget}
    suggestion = client_rw.post("/api/v1/suggestions/", body, format="json")
    assert suggestion.status_code == 400
    assert field in suggestion.json()["errors"]["experiment_budget"]
