"""Stored curve fits of a family (docs/curves.md, "Stored curve fits"): made by the workers as histories arrive,
versioned, immutable, failed with a reason, not redone for an unchanged family; the API and admin pages."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from fits.curve_pipeline import (
    curve_family_data,
    curve_fit_publish,
    curve_fits_sweep,
    curve_scope_refresh,
)
from fits.laws.curve_family import curve_laws
from fits.laws.curves import annealing_loss
from fits.laws.schedules import ScheduleSpec, build_schedule
from fits.models import CurveScope, FamilyCurveFit
from fits.pipeline import fit_family_refresh
from runs.models import FamilyChange, Run
from runs.services import metric_points_append, run_update
from tests.factories import RunFactory, logged_in, staff_user
from workers.tasks import refit_curves

pytestmark = pytest.mark.django_db

PARAMS = {"L0": 2.0, "A": 3.0, "alpha": 0.5, "C": 0.0005}
PEAK = 3e-4
FAST = ("annealing",)


@pytest.fixture(autouse=True)
def _fast_laws(monkeypatch):
    """The annealing law only (0.1 s a fit; the multi-power law takes seconds): one test fits every law."""
    monkeypatch.setattr("fits.curve_pipeline.curve_laws", lambda: FAST)


def _log_curve(run: Run, decay: str, *, total: int = 2000, every: int = 10, upto: int | None = None) -> None:
    """Log a run's train_loss and lr every `every` steps of a `decay` schedule, up to step `upto`."""
    final = 0.0 if decay == "constant" else PEAK / 10
    schedule = build_schedule(
        ScheduleSpec(total_steps=total, peak_lr=PEAK, warmup_steps=100, decay=decay, final_lr=final)
    )
    steps = np.arange(every, (upto or total) + 1, every)
    loss = annealing_loss(PARAMS, schedule, steps, lr_scale=PEAK)
    points = [("train_loss", float(v), int(s), 1_700_000_000_000 + int(s)) for s, v in zip(steps, loss, strict=True)]
    points += [("lr", float(schedule.lr[s]), int(s), 1_700_000_000_000 + int(s)) for s in steps]
    metric_points_append(run_id=run.pk, points=points)


def _family(team, decays=("cosine", "linear", "constant"), family="curves"):
    runs = [
        RunFactory.create(team=team, family=family, n_params=50_000_000, status="running", final_loss=None)
        for _ in decays
    ]
    for run, decay in zip(runs, decays, strict=True):
        _log_curve(run, decay)
    return runs


def _take_change(team, family="curves"):
    """What the workers do when a family's change is due: refit_family, then refit_curves for its scope."""
    fit_family_refresh(team_id=team.pk, family=family)
    scope = CurveScope.objects.get(team=team, family=family)
    refit_curves(scope_id=scope.pk)  # the task, called as a worker would
    return scope


def test_metric_points_of_a_curve_mark_the_family_changed(team):
    [run] = _family(team, decays=("cosine",))
    assert FamilyChange.objects.get(team=team, family="curves").pending_since is not None

    FamilyChange.objects.all().delete()
    metric_points_append(run_id=run.pk, points=[("grad_norm", 1.0, 5, 1)])
    assert not FamilyChange.objects.exists()  # not a curve: nothing to refit


@pytest.mark.slow  # the multi-power law: seconds
def test_the_worker_path_stores_one_succeeded_version_per_curve_law(team, monkeypatch):
    monkeypatch.setattr("fits.curve_pipeline.curve_laws", curve_laws)  # every law of fits.laws.curves
    runs = _family(team)

    _take_change(team)

    fits = FamilyCurveFit.objects.filter(team=team, family="curves")
    assert sorted(fits.values_list("law", flat=True)) == sorted(curve_laws())
    for fit in fits:
        assert (fit.status, fit.version, fit.error) == ("succeeded", 1, "")
        assert fit.loss_key == "train_loss"
        assert sorted(fit.run_ids) == sorted(r.pk for r in runs)
        assert set(fit.params["groups"]) == {"50000000"}
        assert fit.params["shared"]  # the annealing terms, shared by the family
        assert (fit.metrics["n_runs"], fit.metrics["n_decayed_runs"]) == (3, 2)
        assert set(fit.run_metrics) == {str(r.pk) for r in runs}
        assert fit.heldout["n"] == 2  # the two decayed, finished runs, each forecast from its first half
        assert fit.code_version
        assert fit.finished_at is not None
        assert fit.data_fingerprint
    annealing = fits.get(law="annealing")
    assert annealing.params["groups"]["50000000"]["L0"] == pytest.approx(2.0, abs=1e-3)
    assert annealing.params["shared"]["C"] == pytest.approx(PARAMS["C"], rel=1e-2)
    assert annealing.heldout["mae"] < 1e-3
    assert annealing.intervals["shared"]["C"][0] <= PARAMS["C"] <= annealing.intervals["shared"]["C"][1] + 1e-9
    assert CurveScope.objects.get(team=team, family="curves").dirty_since is None


def test_an_unchanged_family_is_not_refitted_and_new_points_make_a_new_version(team):
    runs = _family(team)
    scope = _take_change(team)
    first = set(FamilyCurveFit.objects.values_list("id", flat=True))

    CurveScope.objects.filter(pk=scope.pk).update(dirty_since=timezone.now(), changed_at=timezone.now())
    outcome = curve_scope_refresh(scope_id=scope.pk)
    assert outcome.fit_ids == ()
    assert set(FamilyCurveFit.objects.values_list("id", flat=True)) == first

    _log_curve(runs[2], "constant", total=4000, upto=2100)  # more points of one run
    _take_change(team)
    assert list(FamilyCurveFit.objects.filter(version=2).values_list("law", flat=True)) == list(FAST)


def test_no_decayed_run_stores_one_failed_version_with_the_reason(team):
    runs = _family(team, decays=("constant", "constant"))

    _take_change(team)
    _log_curve(runs[0], "constant", total=4000, upto=2500)  # logging on before any decay
    _take_change(team)

    [fit] = FamilyCurveFit.objects.filter(team=team)
    assert fit.status == "failed"
    assert "no run of the family has a decayed learning rate yet" in fit.error
    assert fit.params == {}

    _log_curve(RunFactory.create(team=team, family="curves", n_params=50_000_000), "cosine")  # a run decays
    _take_change(team)
    assert FamilyCurveFit.objects.get(team=team, version=2).status == "succeeded"


def test_runs_without_an_lr_history_are_left_out_with_the_reason(team):
    runs = _family(team, decays=("cosine", "constant"))
    bare = RunFactory.create(team=team, family="curves", n_params=50_000_000)
    metric_points_append(run_id=bare.pk, points=[("train_loss", 3.0 - i / 100, i, i) for i in range(1, 50)])

    data = curve_family_data(team_id=team.pk, family="curves")

    assert sorted(data.run_ids) == sorted(r.pk for r in runs)
    assert "no lr history and no described schedule" in data.left_out[str(bare.pk)]


def test_a_run_that_describes_its_schedule_and_logs_no_lr_is_fitted_on_the_description(team):
    runs = _family(team, decays=("cosine", "constant"))
    described = {"total_steps": 2000, "peak_lr": PEAK, "warmup_steps": 100, "lr_schedule": "linear", "final_lr": 0.0}
    native = RunFactory.create(team=team, family="curves", n_params=50_000_000, schedule=described)
    schedule = build_schedule(ScheduleSpec(total_steps=2000, peak_lr=PEAK, warmup_steps=100, decay="linear"))
    steps = np.arange(10, 2001, 10)
    loss = annealing_loss(PARAMS, schedule, steps, lr_scale=PEAK)
    metric_points_append(
        run_id=native.pk, points=[("train_loss", float(v), int(s), 1) for s, v in zip(steps, loss, strict=True)]
    )
    before = curve_family_data(team_id=team.pk, family="curves").fingerprint

    data = curve_family_data(team_id=team.pk, family="curves")
    [fitted] = [r for r in data.runs if r.run == str(native.pk)]
    run_update(run=native, fields={"schedule": {**described, "final_lr": PEAK / 10}})

    assert sorted(data.run_ids) == sorted([*(r.pk for r in runs), native.pk])
    assert np.allclose(fitted.schedule.lr, schedule.lr)
    assert curve_family_data(team_id=team.pk, family="curves").fingerprint != before  # a new plan, a new version


def test_a_finished_version_never_changes(team):
    _family(team)
    _take_change(team)
    fit = FamilyCurveFit.objects.get(law="annealing")

    changed = curve_fit_publish(fit_id=fit.pk, attempt=fit.attempt, status="failed", error="late duplicate")

    assert changed is False
    fit.refresh_from_db()
    assert (fit.status, fit.error) == ("succeeded", "")


def test_the_sweep_resends_a_lost_refresh_and_a_dead_workers_version_is_failed_and_redone(team, settings):
    _family(team)
    fit_family_refresh(team_id=team.pk, family="curves")  # marks the scope; its message (on commit) never left
    scope = CurveScope.objects.get(team=team, family="curves")
    CurveScope.objects.filter(pk=scope.pk).update(enqueued_at=None)
    dead = FamilyCurveFit.objects.create(
        team=team, family="curves", law="annealing", version=1, status="running", attempt=1,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.FIT_STUCK_AFTER_SECONDS + 1),
    )  # fmt: skip

    assert curve_fits_sweep() == [scope.pk]
    assert curve_fits_sweep() == []  # re-sent once: marked as on its way
    curve_scope_refresh(scope_id=scope.pk)

    dead.refresh_from_db()
    assert (dead.status, dead.error) == ("failed", "its worker stopped")
    assert FamilyCurveFit.objects.get(law="annealing", version=2).status == "succeeded"


# API ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def stored(team, other_team):
    _family(team)
    _take_change(team)
    _family(other_team, family="secret")
    _take_change(other_team, family="secret")
    return FamilyCurveFit.objects.filter(team=team)


def test_api_lists_and_filters_the_teams_curve_fits_only(client_rw, stored):
    body = client_rw.get("/api/v1/curve-fits/").json()
    assert {r["family"] for r in body["results"]} == {"curves"}
    assert len(body["results"]) == len(FAST)

    only = client_rw.get("/api/v1/curve-fits/", {"family": "curves", "law": "annealing", "status": "succeeded"}).json()
    assert [r["law"] for r in only["results"]] == ["annealing"]
    assert only["results"][0]["heldout"]["n"] == 2
    assert client_rw.get("/api/v1/curve-fits/", {"family": "secret"}).json()["results"] == []


def test_api_detail_and_other_teams_fit_is_404(client_rw, other_client, stored):
    fit = stored.get(law="annealing")
    body = client_rw.get(f"/api/v1/curve-fits/{fit.pk}/").json()
    assert (body["id"], body["status"], body["n_runs"]) == (fit.pk, "succeeded", 3)
    assert set(body["params"]) >= {"groups", "shared"}

    assert other_client.get(f"/api/v1/curve-fits/{fit.pk}/").status_code == 404


@pytest.mark.parametrize(("field", "value"), [("law", "chinchilla"), ("status", "done")])
def test_api_bad_filter_is_400_naming_the_field(client_rw, stored, field, value):
    response = client_rw.get("/api/v1/curve-fits/", {field: value})
    assert response.status_code == 400
    assert field in response.json()["errors"]


# Admin -------------------------------------------------------------------------------------------------------


def test_admin_lists_and_shows_a_curve_fit_with_its_plot_to_its_team_only(team, other_team, stored):
    fit = stored.get(law="annealing")
    member = logged_in(staff_user("ada", team=team, role="member"))
    outsider = logged_in(staff_user("bob", team=other_team, role="owner"))

    listing = member.get("/admin/fits/familycurvefit/")
    assert listing.status_code == 200
    assert "curves · annealing v1" in listing.content.decode()
    assert "secret" not in listing.content.decode()
    page = member.get(f"/admin/fits/familycurvefit/{fit.pk}/change/")
    assert page.status_code == 200
    assert "<svg" in page.content.decode()

    assert outsider.get(f"/admin/fits/familycurvefit/{fit.pk}/change/").status_code == 302
    assert "curves · annealing" not in outsider.get("/admin/fits/familycurvefit/").content.decode()


def test_api_list_costs_the_same_queries_for_2_or_20_versions(client_rw, team, django_assert_max_num_queries):
    def versions(family: str, count: int) -> None:
        FamilyCurveFit.objects.bulk_create(
            [
                FamilyCurveFit(team=team, family=family, law="annealing", version=n, status="failed")
                for n in range(count)
            ]
        )

    versions("small", 2)
    versions("large", 20)
    client_rw.get("/api/v1/curve-fits/")  # warm-up: the key's last use is touched once a minute
    for family, count in (("small", 2), ("large", 20)):
        with django_assert_max_num_queries(2):  # the key, the page
            response = client_rw.get("/api/v1/curve-fits/", {"family": family})
        assert len(response.json()["results"]) == count


def test_a_trunk_and_its_cooldowns_share_one_lineage_and_other_runs_none(team):
    """A cooldown branched off a trunk carries the trunk's history: in the held-out score neither may lend to the
    other, so both carry the trunk's lineage; an unrelated run carries none."""
    trunk, other = _family(team, decays=("constant", "cosine"))
    cooldown = RunFactory.create(
        team=team, family="curves", n_params=50_000_000, status="running", final_loss=None, cooldown_of=trunk
    )
    _log_curve(cooldown, "linear")

    data = curve_family_data(team_id=team.pk, family="curves")

    lineage = {int(r.run): r.lineage for r in data.runs}
    assert lineage[trunk.pk] == lineage[cooldown.pk] == f"trunk-{trunk.pk}"
    assert lineage[other.pk] == ""


def test_linking_a_cooldown_to_its_trunk_gives_a_new_version(team):
    trunk, cooled, _ = _family(team)
    _take_change(team)
    first = FamilyCurveFit.objects.get(team=team, family="curves", law="annealing")

    run_update(run=cooled, fields={"cooldown_of": trunk.pk})  # one lineage now: the held-out score changes
    _take_change(team)

    versions = FamilyCurveFit.objects.filter(team=team, family="curves", law="annealing").order_by("version")
    assert [v.version for v in versions] == [first.version, first.version + 1]
    assert versions.last().data_fingerprint != first.data_fingerprint
