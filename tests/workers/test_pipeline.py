"""The refit pipeline step by step, without a broker: debounce, snapshot, claim, chunks, publish, sweep."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from fits.laws import fit_law, fp_synthetic, kumar_synthetic, load_chinchilla_epoch
from fits.models import Fit, FitChunk, FitScope
from fits.pipeline import (
    fit_compute_chunk,
    fit_execute,
    fit_family_refresh,
    fit_finish,
    fit_scope_refresh,
    fits_sweep,
)
from fits.selectors import fit_data
from runs.models import FamilyChange, Run
from tests.factories import payloads_from_observations

pytestmark = pytest.mark.django_db


def _post(client, bodies):
    for start in range(0, len(bodies), 1000):
        response = client.post("/api/v1/runs/bulk/", {"runs": bodies[start : start + 1000]}, format="json")
        assert response.status_code == 200, response.json()


def _run_fit_inline(fit_id):
    """What the workers do for one fit: point, every chunk (twice, as duplicate deliveries would), finish."""
    for index in fit_execute(fit_id=fit_id):
        fit_compute_chunk(fit_id=fit_id, index=index)
        fit_compute_chunk(fit_id=fit_id, index=index)
    fit_finish(fit_id=fit_id)


def _refresh_all(team):
    """What refit_family does for every family of the team with a pending change, each fit run inline."""
    ids = []
    for family in FamilyChange.objects.filter(team=team, pending_since__isnull=False).values_list("family", flat=True):
        outcome = fit_family_refresh(team_id=team.pk, family=family)
        assert outcome.deferred_scope_ids == ()  # nothing is in flight between these steps
        for fit_id in outcome.fit_ids:
            _run_fit_inline(fit_id)
            ids.append(fit_id)
    return ids


def _queue(team, law):
    """The fit fit_family_refresh queues for `law` (the others are left queued)."""
    outcome = fit_family_refresh(team_id=team.pk, family="epoch")
    return next(f for f in outcome.fit_ids if Fit.objects.get(pk=f).law == law)


@pytest.fixture
def epoch_runs(client_rw, team):
    _post(client_rw, payloads_from_observations(load_chinchilla_epoch(), family="epoch"))
    return team


def test_posting_runs_marks_the_family_once_and_announces_one_refit(
    client_rw, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        _post(client_rw, payloads_from_observations(load_chinchilla_epoch(), family="epoch")[:50])
        client_rw.post(
            "/api/v1/runs/", payloads_from_observations(load_chinchilla_epoch(), family="epoch")[60], format="json"
        )

    change = FamilyChange.objects.get(team=team, family="epoch")
    assert change.pending_since is not None
    assert change.announced_at is not None
    assert len(callbacks) == 1  # one debounced refit message for the family, not one per post or per law


def test_refit_waits_for_changes_to_pause(epoch_runs, settings):
    settings.FIT_DEBOUNCE_SECONDS, settings.FIT_MAX_WAIT_SECONDS = 5, 60

    outcome = fit_family_refresh(team_id=epoch_runs.pk, family="epoch")

    assert outcome.fit_ids == ()
    assert 0 < outcome.retry_in <= 5
    assert not Fit.objects.exists()
    assert FamilyChange.objects.get(team=epoch_runs).pending_since is not None


def test_refit_waits_no_longer_than_the_cap(epoch_runs, settings):
    settings.FIT_DEBOUNCE_SECONDS, settings.FIT_MAX_WAIT_SECONDS = 5, 60
    long_ago = timezone.now() - timedelta(seconds=61)
    FamilyChange.objects.filter(team=epoch_runs).update(pending_since=long_ago, changed_at=timezone.now())

    outcome = fit_family_refresh(team_id=epoch_runs.pk, family="epoch")

    assert outcome.retry_in is None
    assert sorted(Fit.objects.get(pk=f).law for f in outcome.fit_ids) == ["chinchilla", "precision"]
    assert FamilyChange.objects.get(team=epoch_runs).pending_since is None  # caught up


def test_a_law_with_a_fit_in_flight_is_deferred_and_refitted_after_it(epoch_runs, client_rw):
    fit_id = _queue(epoch_runs, "chinchilla")
    run = Run.objects.filter(team=epoch_runs).order_by("id").first()
    client_rw.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": run.final_loss + 0.01}, format="json")

    outcome = fit_family_refresh(team_id=epoch_runs.pk, family="epoch")

    chinchilla = FitScope.objects.get(team=epoch_runs, law="chinchilla")
    assert chinchilla.pk in outcome.deferred_scope_ids
    assert chinchilla.dirty_since is not None
    assert fit_scope_refresh(scope_id=chinchilla.pk).retry_in is not None  # still in flight: later
    _run_fit_inline(fit_id)
    later = fit_scope_refresh(scope_id=chinchilla.pk)
    assert Fit.objects.get(pk=later.fit_id).version == 2


def test_fit_matches_the_engine_on_the_same_runs(epoch_runs, settings):
    [chinchilla] = [f for f in _refresh_all(epoch_runs) if Fit.objects.get(pk=f).law == "chinchilla"]
    fit = Fit.objects.get(pk=chinchilla)
    data = fit_data(team_id=epoch_runs.pk, family="epoch")

    direct = fit_law(
        "chinchilla", data.observations, objective=fit.objective, n_bootstrap=settings.FIT_BOOTSTRAP_DRAWS, seed=fit.pk
    )

    assert fit.status == "succeeded"
    assert fit.params == pytest.approx(direct.params, rel=1e-9)
    assert fit.draws_array() == pytest.approx(direct.draws, rel=1e-9)
    assert fit.intervals == {k: list(v) for k, v in direct.intervals.items()}
    assert fit.data_fingerprint == data.fingerprint
    assert sorted(fit.run_ids) == sorted(Run.objects.filter(team=epoch_runs).values_list("id", flat=True))
    # Epoch's published grid fit (docs/laws.md 1.1): the pipeline changes nothing of the science. (Epoch's fit uses
    # all 240 points; the screening rule leaves out 4 digitisation outliers, which moves alpha by 1.5%.)
    assert fit.params["E"] == pytest.approx(1.8172, rel=0.01)
    assert fit.params["alpha"] == pytest.approx(0.3473, rel=0.03)


def test_unchanged_data_makes_no_new_version(epoch_runs, client_rw):
    _refresh_all(epoch_runs)
    run = Run.objects.filter(team=epoch_runs).first()
    # A re-post with identical values dirties the scope, but the fingerprint is unchanged.
    client_rw.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": run.final_loss}, format="json")

    assert _refresh_all(epoch_runs) == []
    assert Fit.objects.filter(team=epoch_runs).count() == 2
    assert not FitScope.objects.filter(team=epoch_runs, dirty_since__isnull=False).exists()


def test_excluding_a_run_makes_a_new_version_without_it(epoch_runs, client_rw):
    _refresh_all(epoch_runs)
    first = Fit.objects.get(team=epoch_runs, law="chinchilla", version=1)
    run = Run.objects.filter(team=epoch_runs).order_by("id").first()

    response = client_rw.patch(
        f"/api/v1/runs/{run.pk}/", {"excluded": True, "exclusion_reason": "outlier"}, format="json"
    )
    assert response.status_code == 200
    _refresh_all(epoch_runs)

    second = Fit.objects.get(team=epoch_runs, law="chinchilla", version=2)
    assert second.status == "succeeded"
    assert run.pk in first.run_ids
    assert run.pk not in second.run_ids
    assert second.data_fingerprint != first.data_fingerprint


def test_duplicate_deliveries_compute_each_step_once(epoch_runs):
    fit_id = _queue(epoch_runs, "chinchilla")

    missing = fit_execute(fit_id=fit_id)
    assert fit_execute(fit_id=fit_id) == []  # the second delivery finds the fit claimed
    for index in missing + missing:
        fit_compute_chunk(fit_id=fit_id, index=index)
    published = [fit_finish(fit_id=fit_id), fit_finish(fit_id=fit_id)]

    fit = Fit.objects.get(pk=fit_id)
    assert published == [True, False]
    assert fit.status == "succeeded"
    assert fit.attempt == 1
    assert fit.draws_array().shape[0] == fit.n_bootstrap
    assert not FitChunk.objects.filter(fit_id=fit_id).exists()  # chunks are scratch space


def test_versions_count_up_without_gaps(epoch_runs, client_rw):
    for i in range(3):
        run = Run.objects.filter(team=epoch_runs).order_by("id")[i]
        client_rw.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": run.final_loss + 0.01}, format="json")
        _refresh_all(epoch_runs)
    versions = list(
        Fit.objects.filter(team=epoch_runs, law="precision").order_by("version").values_list("version", flat=True)
    )
    assert versions == [1, 2, 3]


def test_a_fit_whose_worker_died_is_taken_over_and_finishes_once(epoch_runs, settings):
    fit_id = _queue(epoch_runs, "chinchilla")
    missing = fit_execute(fit_id=fit_id)
    fit_compute_chunk(fit_id=fit_id, index=missing[0])
    # ... and then the worker died: no heartbeat for longer than the stuck timeout.
    Fit.objects.filter(pk=fit_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS + 1)
    )

    assert fit_id in fits_sweep().fit_ids
    remaining = fit_execute(fit_id=fit_id)
    assert remaining == missing[1:]  # the stored chunk is kept; only the rest is computed
    for index in remaining:
        fit_compute_chunk(fit_id=fit_id, index=index)
    assert fit_finish(fit_id=fit_id)

    fit = Fit.objects.get(pk=fit_id)
    assert (fit.status, fit.attempt) == ("succeeded", 2)
    assert Fit.objects.filter(team=epoch_runs, law="chinchilla").count() == 1


def test_a_live_fit_is_not_taken_over(epoch_runs):
    fit_id = _queue(epoch_runs, "chinchilla")
    fit_execute(fit_id=fit_id)
    assert fit_execute(fit_id=fit_id) == []
    assert fit_id not in fits_sweep().fit_ids


def test_a_fit_that_cannot_succeed_is_stored_failed_and_not_retried(client_rw, team):
    bodies = [
        {"family": "tiny", "n_params": 10**8, "n_tokens": 2 * 10**9, "final_loss": 3.0 + i / 10} for i in range(3)
    ]
    _post(client_rw, bodies)

    _refresh_all(team)
    failed = Fit.objects.get(team=team, law="chinchilla")
    assert failed.status == "failed"
    assert "N" in failed.error or "points" in failed.error  # the engine's reason, e.g. no spread in N

    client_rw.patch(f"/api/v1/runs/{Run.objects.filter(team=team).first().pk}/", {"name": "renamed"}, format="json")
    assert _refresh_all(team) == []  # same data: the failure stands until the data changes


def test_sweep_resends_lost_refits_and_unclaimed_fits(epoch_runs, settings):
    old = timezone.now() - timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS + 1)
    FamilyChange.objects.filter(team=epoch_runs).update(announced_at=old)  # the message never arrived

    found = fits_sweep()

    assert found.families == [(epoch_runs.pk, "epoch")]
    assert fits_sweep().families == []  # re-sent just now: not lost again yet
    FamilyChange.objects.filter(team=epoch_runs).update(announced_at=None)  # the broker refused the message
    assert fits_sweep().families == [(epoch_runs.pk, "epoch")]
    fit_id = _queue(epoch_runs, "precision")
    Fit.objects.filter(pk=fit_id).update(created_at=old)
    assert fit_id in fits_sweep().fit_ids


def test_sweep_resends_a_deferred_law(epoch_runs, settings):
    old = timezone.now() - timedelta(seconds=settings.FIT_MAX_WAIT_SECONDS + settings.FIT_SWEEP_GRACE_SECONDS + 1)
    _refresh_all(epoch_runs)
    scope = FitScope.objects.get(team=epoch_runs, law="chinchilla")
    FitScope.objects.filter(pk=scope.pk).update(dirty_since=old, enqueued_at=old)

    assert fits_sweep().scope_ids == [scope.pk]


def test_precision_fit_on_kumar_synthetic_runs(client_rw, team):
    noisy, _ = kumar_synthetic(seed=3, n_values=(30e6, 60e6, 110e6), d_values=(1.5e9, 6e9, 26e9))
    _post(client_rw, payloads_from_observations(noisy, family="kumar"))

    _refresh_all(team)

    fit = Fit.objects.get(team=team, law="precision")
    assert fit.status == "succeeded", fit.error
    assert {"gamma_w", "gamma_a", "gamma_kv", "C_T", "gamma_post"} <= set(fit.params)
    assert np.isfinite(fit.draws_array()).all()


def test_the_fp_law_fits_only_families_whose_runs_report_a_format(epoch_runs, client_rw):
    # Epoch's runs carry no exponent/mantissa bits: the fp scope is cleared without a version (no failed fit).
    _refresh_all(epoch_runs)
    assert not Fit.objects.filter(team=epoch_runs, law="fp").exists()
    assert not FamilyChange.objects.filter(team=epoch_runs, pending_since__isnull=False).exists()

    # Asked for explicitly, it makes a version that fails with the reason.
    response = client_rw.post("/api/v1/fits/", {"family": "epoch", "law": "fp"}, format="json")
    assert response.status_code == 202, response.json()
    _run_fit_inline(response.json()["id"])
    failed = Fit.objects.get(team=epoch_runs, law="fp")
    assert failed.status == "failed"
    assert "exponent_bits and mantissa_bits" in failed.error

    # A family of floating-point runs gets all three laws, and the ranking puts the fp law first.
    _post(client_rw, payloads_from_observations(fp_synthetic(seed=4), family="fp-sweep", prefix="fp"))
    _refresh_all(epoch_runs)
    fits = {f.law: f for f in Fit.objects.filter(team=epoch_runs, family="fp-sweep")}
    assert set(fits) == {"chinchilla", "precision", "fp"}
    assert fits["fp"].status == "succeeded", fits["fp"].error
    assert {"delta", "nu", "gamma"} <= set(fits["fp"].params)
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "fp-sweep"}).json()
    assert ranking["best"] == "fp", ranking


def test_a_fit_whose_metrics_are_not_finite_is_still_published(client_rw, team):
    # Every run has the same loss: R^2 is undefined (NaN), which JSON columns on PostgreSQL refuse. The fit must
    # still be published, with the undefined figure as null, not left running.
    bodies = [
        {"family": "flat", "external_id": f"flat-{n}-{d}", "n_params": n, "n_tokens": d, "final_loss": 3.0}
        for n in (10**8, 2 * 10**8, 4 * 10**8, 8 * 10**8)
        for d in (2 * 10**9, 4 * 10**9, 8 * 10**9)
    ]
    _post(client_rw, bodies)

    _refresh_all(team)

    fits = Fit.objects.filter(team=team, family="flat")
    assert fits.filter(status="succeeded").exists()  # chinchilla fits a flat surface (A = B = 0)
    for fit in fits:
        assert fit.status in {"succeeded", "failed"}, (fit.law, fit.status)
        if fit.status == "succeeded":
            assert fit.metrics["r2"] is None
            assert client_rw.get(f"/api/v1/fits/{fit.pk}/").status_code == 200
