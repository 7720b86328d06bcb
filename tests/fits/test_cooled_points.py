"""Cooled points in the law fits (docs/curves.md section 6): a cooldown (`cooldown_of`) enters its family's fits
as its own (N, D, loss) point; a trunk that does not decay and has cooldowns never does
(fits.selectors.uncooled_trunks)."""

import pytest

from fits.laws import fit_point
from fits.laws.curve_data import load_gemstones_checkpoints
from fits.selectors import fit_data, uncooled_trunks
from tests.factories import payload

pytestmark = pytest.mark.django_db

CONSTANT = {"total_steps": 100_000, "peak_lr": 1e-3, "warmup_steps": 1000, "lr_schedule": "constant"}
COSINE = {**CONSTANT, "lr_schedule": "cosine", "final_lr": 1e-4}


def post(client, **fields):
    response = client.post("/api/v1/runs/", payload(family="cool", **fields), format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_a_constant_lr_trunk_leaves_the_fit_and_its_cooldowns_enter_as_their_own_points(client_rw, team):
    plain = post(client_rw, n_params=100_000_000, n_tokens=2_000_000_000, final_loss=3.4)
    trunk = post(client_rw, n_params=200_000_000, n_tokens=8_000_000_000, final_loss=3.30, schedule=CONSTANT)
    cooled = [
        post(client_rw, n_params=200_000_000, n_tokens=d, final_loss=loss, cooldown_of=trunk)
        for d, loss in ((2_200_000_000, 3.31), (4_400_000_000, 3.18))
    ]

    data = fit_data(team_id=team.pk, family="cool")

    assert uncooled_trunks(team_id=team.pk, family="cool") == [trunk]
    assert data.run_ids == sorted([plain, *cooled])
    assert sorted(data.observations.n_tokens.tolist()) == [2e9, 2.2e9, 4.4e9]


def test_a_trunk_that_decays_itself_or_has_no_cooldown_stays(client_rw, team):
    decaying = post(client_rw, n_params=200_000_000, n_tokens=8_000_000_000, final_loss=3.2, schedule=COSINE)
    branch = post(client_rw, n_params=200_000_000, n_tokens=4_400_000_000, final_loss=3.25, cooldown_of=decaying)
    constant_alone = post(client_rw, n_params=100_000_000, n_tokens=2_000_000_000, final_loss=3.4, schedule=CONSTANT)

    assert uncooled_trunks(team_id=team.pk, family="cool") == []
    assert fit_data(team_id=team.pk, family="cool").run_ids == sorted([decaying, branch, constant_alone])


def test_linking_a_cooldown_marks_the_family_for_a_refit_and_changes_the_fit_data(client_rw, team):
    trunk = post(client_rw, n_params=200_000_000, n_tokens=8_000_000_000, final_loss=3.30, schedule=CONSTANT)
    branch = post(client_rw, n_params=200_000_000, n_tokens=4_400_000_000, final_loss=3.18)
    before = fit_data(team_id=team.pk, family="cool")

    client_rw.patch(f"/api/v1/runs/{branch}/", {"cooldown_of": trunk}, format="json")
    after = fit_data(team_id=team.pk, family="cool")

    assert before.run_ids == [trunk, branch]
    assert after.run_ids == [branch]
    assert after.fingerprint != before.fingerprint


def test_on_gemstones_fitting_the_cooled_points_and_not_the_trunks_changes_the_law_as_measured():
    # The reason for the rule, on the shipped data: un-cooled trunk checkpoints raise E (docs/curves.md, section 6).
    from fits.laws import Observations

    points = load_gemstones_checkpoints()

    def fit(cooled: bool):
        chosen = [c for c in points if c.cooled == cooled]
        data = Observations.build(
            n_params=[c.n_params for c in chosen],
            n_tokens=[c.n_tokens for c in chosen],
            final_loss=[c.loss for c in chosen],
        )
        point = fit_point("chinchilla", data)
        return {**point.fixed, **point.params}

    assert fit(False)["E"] - fit(True)["E"] > 0.05
