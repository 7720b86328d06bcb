"""A run's planned schedule and its cooldown trunk through the API (docs/api.md, "Schedules and cooldowns")."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fits.laws.schedules import ScheduleSpec, build_schedule
from runs.schedules import LR_SCHEDULES, schedule_clean
from tests.factories import payload

pytestmark = pytest.mark.django_db

COSINE = {"total_steps": 72000, "peak_lr": 3e-4, "warmup_steps": 2160, "lr_schedule": "cosine", "final_lr": 3e-5}


def test_a_schedule_is_stored_with_every_field_and_shown(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(schedule=COSINE), format="json")

    assert response.status_code == 201, response.json()
    stored = client_rw.get(f"/api/v1/runs/{response.json()['id']}/").json()["schedule"]
    assert stored == {**COSINE, "decay_start": None, "tokens_per_step": None}


def test_a_run_without_a_schedule_shows_null_and_patch_can_clear_it(client_rw):
    created = client_rw.post("/api/v1/runs/", payload(), format="json").json()
    assert created["schedule"] is None
    assert created["cooldown_of"] is None

    run_id = client_rw.post("/api/v1/runs/", payload(schedule=COSINE), format="json").json()["id"]
    cleared = client_rw.patch(f"/api/v1/runs/{run_id}/", {"schedule": None}, format="json")

    assert cleared.status_code == 200, cleared.json()
    assert cleared.json()["schedule"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"warmup_steps": 80000}, "warmup_steps"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"peak_lr": 0}, "peak_lr"),
        ({"peak_lr": "3e-4"}, "peak_lr"),
        ({"total_steps": 1.5}, "total_steps"),
        ({"total_steps": None}, "total_steps"),
        ({"lr_schedule": "triangle"}, "lr_schedule"),
        ({"lr_schedule": "wsd"}, "decay_start"),
        ({"decay_start": 100}, "decay_start"),
        ({"final_lr": 1.0}, "final_lr"),
        ({"lr_schedule": "exponential", "final_lr": 0}, "final_lr"),
        ({"tokens_per_step": -4}, "tokens_per_step"),
        ({"lr_schedule": "step", "warmup_steps": 0, "final_lr": 0}, "decay_start"),  # no step at a positive rate
        ({"momentum": 0.9}, "momentum"),
    ],
)
def test_a_bad_schedule_field_is_a_400_naming_it_and_nothing_is_stored(client_rw, change, field):
    response = client_rw.post("/api/v1/runs/", payload(schedule={**COSINE, **change}), format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]["schedule"]) == [field]
    assert client_rw.get("/api/v1/runs/").json()["results"] == []


def test_a_schedule_that_is_not_an_object_is_a_400(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(schedule=[1, 2]), format="json")

    assert response.status_code == 400
    assert "JSON object" in response.json()["errors"]["schedule"][0]


def test_a_cooldown_names_its_trunk_of_the_same_team(client_rw):
    trunk = client_rw.post("/api/v1/runs/", payload(external_id="trunk"), format="json").json()["id"]

    response = client_rw.post("/api/v1/runs/", payload(external_id="cool", cooldown_of=trunk), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["cooldown_of"] == trunk
    again = client_rw.post("/api/v1/runs/", payload(external_id="cool", cooldown_of=trunk), format="json")
    assert again.status_code == 200
    assert again.json()["cooldown_of"] == trunk


def test_another_teams_run_or_the_run_itself_is_no_trunk(client_rw, other_client):
    foreign = other_client.post("/api/v1/runs/", payload(), format="json").json()["id"]
    own = client_rw.post("/api/v1/runs/", payload(external_id="own"), format="json").json()["id"]

    foreign_link = client_rw.post("/api/v1/runs/", payload(cooldown_of=foreign), format="json")
    self_patch = client_rw.patch(f"/api/v1/runs/{own}/", {"cooldown_of": own}, format="json")
    self_repost = client_rw.post("/api/v1/runs/", payload(external_id="own", cooldown_of=own), format="json")

    assert foreign_link.status_code == 400
    assert f"No run with id {foreign}" in foreign_link.json()["errors"]["cooldown_of"][0]
    assert self_patch.status_code == 400
    assert "itself" in self_patch.json()["errors"]["cooldown_of"][0]
    assert self_repost.status_code == 400
    assert "cooldown_of" in str(self_repost.json()["errors"])


def test_patch_sets_and_clears_the_trunk(client_rw):
    trunk = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]
    run = client_rw.post("/api/v1/runs/", payload(), format="json").json()["id"]

    linked = client_rw.patch(f"/api/v1/runs/{run}/", {"cooldown_of": trunk}, format="json")
    unlinked = client_rw.patch(f"/api/v1/runs/{run}/", {"cooldown_of": None}, format="json")

    assert linked.json()["cooldown_of"] == trunk
    assert unlinked.json()["cooldown_of"] is None


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    total=st.integers(1, 200_000),
    warm=st.one_of(st.integers(0, 2), st.integers(0, 200_000)),
    kind=st.sampled_from(LR_SCHEDULES),
    start=st.one_of(st.none(), st.integers(0, 2), st.integers(0, 200_000)),
    peak=st.floats(1e-6, 1.0),
    final_fraction=st.one_of(st.just(0.0), st.floats(0.0, 1.0)),  # 0: a decay to nothing
)
def test_every_schedule_the_api_accepts_builds_in_the_law_engine(total, warm, kind, start, peak, final_fraction):
    body = {"total_steps": total, "peak_lr": peak, "warmup_steps": warm, "lr_schedule": kind}
    body.update({"decay_start": start, "final_lr": peak * final_fraction})
    cleaned, errors = schedule_clean(body)
    if errors:
        return
    decay = "linear" if cleaned["lr_schedule"] == "wsd" else cleaned["lr_schedule"]
    spec = ScheduleSpec(
        total_steps=cleaned["total_steps"],
        peak_lr=cleaned["peak_lr"],
        warmup_steps=cleaned["warmup_steps"],
        decay=decay,
        decay_start=cleaned["decay_start"],
        final_lr=cleaned["final_lr"],
    )
    assert build_schedule(spec).total_steps == total
