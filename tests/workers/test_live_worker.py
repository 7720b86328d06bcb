"""The refit pipeline through real Celery worker processes on Redis and PostgreSQL (required in CI)."""

import pytest
from rest_framework.test import APIClient

from fits.laws import fit_law, kumar_synthetic, load_chinchilla_epoch
from fits.models import Fit, FitScope
from fits.pipeline import fits_sweep
from fits.selectors import fit_data
from fits.services import fit_request
from runs.models import FamilyChange, Run, Team
from runs.services import api_key_create
from tests.factories import payloads_from_observations, runs_from_observations
from tests.workers.celery_helpers import set_broker_url, wait_for
from workers.tasks import sweep_fits

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _api(team: Team) -> APIClient:
    _, secret = api_key_create(team=team)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _settled(team: Team) -> bool:
    """Every law has a finished fit of the family's current data and nothing is in flight or dirty."""
    if FitScope.objects.filter(team=team, dirty_since__isnull=False).exists():
        return False
    if FamilyChange.objects.filter(team=team, pending_since__isnull=False).exists():
        return False
    if Fit.objects.filter(team=team, status__in=["queued", "running"]).exists():
        return False
    return Fit.objects.filter(team=team, status__in=["succeeded", "failed"]).values("law").distinct().count() == 2


def test_300_runs_posted_one_by_one_give_a_few_fits_matching_the_engine(start_worker, settings):
    settings.FIT_DEBOUNCE_SECONDS = 2
    worker = start_worker(FIT_DEBOUNCE_SECONDS=2, FIT_BOOTSTRAP_DRAWS=20, FIT_CHUNK_SIZE=5)
    team = Team.objects.create(slug="live")
    client = _api(team)
    noisy, _ = kumar_synthetic(seed=5, n_values=(30e6, 60e6, 110e6), d_values=(1.5e9, 6e9, 26e9))
    bodies = payloads_from_observations(noisy, family="sweep")[:300]

    for body in bodies:
        assert client.post("/api/v1/runs/", body, format="json").status_code == 201

    wait_for(lambda: _settled(team), timeout=120, what="both laws fitted", log=worker.log)
    data = fit_data(team_id=team.pk, family="sweep")
    for law in ("chinchilla", "precision"):
        versions = Fit.objects.filter(team=team, law=law).order_by("version")
        assert 1 <= versions.count() <= 3, list(versions.values_list("version", "status"))
        latest = versions.last()
        assert latest.status == "succeeded", latest.error
        assert latest.data_fingerprint == data.fingerprint
        assert len(latest.run_ids) == 300
        direct = fit_law(law, data.observations, objective=latest.objective, n_bootstrap=20, seed=latest.pk)
        assert latest.params == pytest.approx(direct.params, rel=1e-9)
        assert latest.draws_array() == pytest.approx(direct.draws, rel=1e-9)
    assert " ERROR" not in worker.log()


def test_posts_succeed_while_redis_is_unreachable_and_the_sweep_catches_up(start_worker, settings):
    team = Team.objects.create(slug="outage")
    client = _api(team)
    bodies = payloads_from_observations(load_chinchilla_epoch(), family="epoch")
    good_url = settings.CELERY_BROKER_URL

    # given: the broker is unreachable from the web side (nothing listens on port 1)
    set_broker_url(settings, "redis://127.0.0.1:1/0")
    statuses = [client.post("/api/v1/runs/", body, format="json").status_code for body in bodies[:120]]
    statuses.append(client.post("/api/v1/runs/bulk/", {"runs": bodies[120:]}, format="json").status_code)

    # then: every post landed, nothing was fitted, and the family remembers its change
    assert set(statuses) == {201, 200}
    assert Run.objects.filter(team=team).count() == 240
    assert not Fit.objects.filter(team=team).exists()
    assert FamilyChange.objects.get(team=team, family="epoch").pending_since is not None

    # when: the broker is back and the (beat) sweep runs once the lost messages are overdue
    set_broker_url(settings, good_url)
    settings.FIT_MAX_WAIT_SECONDS, settings.FIT_SWEEP_GRACE_SECONDS = 0, 1
    worker = start_worker(FIT_BOOTSTRAP_DRAWS=20, FIT_MAX_WAIT_SECONDS=0, FIT_SWEEP_GRACE_SECONDS=1)
    wait_for(lambda: fits_sweep_ready(team), timeout=10, what="the refit messages to be overdue")
    sweep_fits.apply_async()

    wait_for(lambda: _settled(team), timeout=120, what="the sweep's fits", log=worker.log)
    assert Fit.objects.filter(team=team, status="succeeded").count() == 2


def fits_sweep_ready(team: Team) -> bool:
    from datetime import timedelta

    from django.utils import timezone

    recent = timezone.now() - timedelta(seconds=1.5)
    return not FamilyChange.objects.filter(team=team, announced_at__gt=recent).exists()


def test_a_worker_killed_mid_fit_is_replaced_and_the_fit_completes_once(start_worker, settings):
    team = Team.objects.create(slug="crash")
    client = _api(team)
    noisy, _ = kumar_synthetic(seed=7)
    slow = {"FIT_BOOTSTRAP_DRAWS": 400, "FIT_CHUNK_SIZE": 400, "FIT_STUCK_AFTER_SECONDS": 3, "FIT_HEARTBEAT_SECONDS": 1}
    first = start_worker(**slow)

    response = client.post(
        "/api/v1/runs/bulk/", {"runs": payloads_from_observations(noisy, family="k")[:1000]}, format="json"
    )
    assert response.status_code == 200
    # The precision fit's single 400-draw chunk takes many seconds: kill the worker while it computes it.
    wait_for(
        lambda: "run_fit_chunk" in first.log()
        and Fit.objects.filter(team=team, law="precision", status="running").exists(),
        timeout=60,
        what="the precision bootstrap to start",
        log=first.log,
    )
    first.kill()
    fit = Fit.objects.get(team=team, law="precision")
    assert fit.status == "running"

    settings.FIT_STUCK_AFTER_SECONDS = 3  # for the test's own peek at the sweep; the worker has its own
    second = start_worker(**slow)
    wait_for(lambda: fit.pk in fits_sweep_ids(), timeout=30, what="the sweep to see the silent fit")
    sweep_fits.apply_async()

    wait_for(lambda: Fit.objects.get(pk=fit.pk).status == "succeeded", timeout=180, what="the fit", log=second.log)
    fit.refresh_from_db()
    assert fit.attempt == 2
    assert fit.draws_array().shape == (400, len(fit.draw_names))
    assert Fit.objects.filter(team=team, law="precision").count() == 1


def test_a_healthy_worker_on_a_step_longer_than_the_takeover_threshold_is_never_taken_over(start_worker, settings):
    # One 200-draw chunk computes for many times the 3 s threshold; its heartbeat (every second) keeps the sweep
    # from ever seeing the fit as silent, so it runs exactly once (attempt 1).
    # Only this fit is queued (runs written directly, one law asked for), so no step waits behind another fit.
    team = Team.objects.create(slug="healthy")
    noisy, _ = kumar_synthetic(seed=7)
    runs_from_observations(team, noisy, family="k", prefix="k")
    worker = start_worker(
        FIT_BOOTSTRAP_DRAWS=200, FIT_CHUNK_SIZE=200, FIT_STUCK_AFTER_SECONDS=3, FIT_HEARTBEAT_SECONDS=1
    )
    settings.FIT_BOOTSTRAP_DRAWS, settings.FIT_CHUNK_SIZE = 200, 200
    fit_request(team=team, family="k", law="precision")
    wait_for(
        lambda: Fit.objects.filter(team=team, law="precision", status="running").exists(),
        timeout=60,
        what="the precision fit to start",
        log=worker.log,
    )
    settings.FIT_STUCK_AFTER_SECONDS = 3
    fit = Fit.objects.get(team=team, law="precision")
    seen_silent = []

    def done() -> bool:
        if fit.pk in fits_sweep_ids():
            seen_silent.append(True)
        return Fit.objects.get(pk=fit.pk).status != "running"

    wait_for(done, timeout=240, what="the fit", log=worker.log)
    fit.refresh_from_db()
    assert fit.status == "succeeded", fit.error
    assert not seen_silent
    assert fit.attempt == 1


def fits_sweep_ids() -> list[int]:
    # Peek without claiming: the sweep itself only reads and re-sends.
    return fits_sweep().fit_ids


def test_the_same_refit_message_delivered_twice_makes_one_version(start_worker):
    team = Team.objects.create(slug="twice")
    client = _api(team)
    worker = start_worker(FIT_BOOTSTRAP_DRAWS=20, FIT_DEBOUNCE_SECONDS=0)
    bodies = payloads_from_observations(load_chinchilla_epoch(), family="epoch")
    assert client.post("/api/v1/runs/bulk/", {"runs": bodies}, format="json").status_code == 200
    wait_for(lambda: _settled(team), timeout=120, what="the first fits", log=worker.log)

    from workers.tasks import refit_family, refit_scope, run_fit

    scope = FitScope.objects.get(team=team, law="chinchilla")
    fit = Fit.objects.get(team=team, law="chinchilla")
    family = {"team_id": team.pk, "family": "epoch"}
    for _ in range(2):
        refit_family.apply_async(kwargs=family)
        refit_scope.apply_async(kwargs={"scope_id": scope.pk})
        run_fit.apply_async(kwargs={"fit_id": fit.pk})
    client.patch(f"/api/v1/runs/{Run.objects.filter(team=team).first().pk}/", {"final_loss": 2.5}, format="json")
    for _ in range(2):
        refit_family.apply_async(kwargs=family)
        refit_scope.apply_async(kwargs={"scope_id": scope.pk})

    wait_for(lambda: _settled(team), timeout=120, what="the refit", log=worker.log)
    assert list(
        Fit.objects.filter(team=team, law="chinchilla").order_by("version").values_list("version", "status")
    ) == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]


def test_two_workers_racing_on_the_same_family_make_one_version(start_worker):
    team = Team.objects.create(slug="race-workers")
    client = _api(team)
    workers = [start_worker(FIT_BOOTSTRAP_DRAWS=40, FIT_CHUNK_SIZE=5, FIT_DEBOUNCE_SECONDS=0) for _ in range(2)]
    bodies = payloads_from_observations(load_chinchilla_epoch(), family="epoch")

    from workers.tasks import refit_family

    assert client.post("/api/v1/runs/bulk/", {"runs": bodies}, format="json").status_code == 200
    for _ in range(4):  # a burst of duplicate refit requests for the same family, taken by both workers at once
        refit_family.apply_async(kwargs={"team_id": team.pk, "family": "epoch"})

    wait_for(lambda: _settled(team), timeout=120, what="the fits", log=lambda: workers[0].log() + workers[1].log())
    for law in ("chinchilla", "precision"):
        assert list(Fit.objects.filter(team=team, law=law).values_list("version", "status")) == [(1, "succeeded")]
    both = workers[0].log() + workers[1].log()
    assert "run_fit_chunk" in workers[0].log()
    assert "run_fit_chunk" in workers[1].log()  # the bootstrap really was shared
    assert " ERROR" not in both
