"""Cost of one curve refit (docs/curves.md, "Stored curve fits"): a family of two runs of 100,000 logged points each
(train_loss and lr at 50,000 steps; one cosine, one warmup-stable-decay), fitted through the worker path.

    DATABASE_URL=sqlite:////tmp/bench-curves.sqlite3 .venv/bin/python bench/curve_refit.py [--points 100000]

Migrates the database named by DATABASE_URL (default: a throwaway SQLite file), adds a throwaway team, and prints
wall and CPU seconds of: the fingerprint query, reading the histories, each law's fit (with its held-out
forecasts), the whole refresh; then the refresh after 1,000 more points, and one with nothing changed. Deletes the
team again.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/bench-curves.sqlite3")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from fits.curve_pipeline import curve_family_data, curve_family_fingerprint, curve_scope_refresh  # noqa: E402
from fits.laws.curve_family import curve_laws, fit_family_curves  # noqa: E402
from fits.laws.curves import annealing_loss  # noqa: E402
from fits.laws.schedules import ScheduleSpec, build_schedule  # noqa: E402
from fits.models import CurveScope, FamilyCurveFit  # noqa: E402
from runs.models import Run, Team  # noqa: E402
from runs.services import metric_points_append  # noqa: E402

T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    print(f"{label}: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
    return out


def log(run: Run, decay: str, steps: np.ndarray, total: int) -> None:
    spec = ScheduleSpec(
        total_steps=total,
        peak_lr=3e-4,
        warmup_steps=500,
        decay="linear" if decay == "wsd" else "cosine",
        decay_start=int(0.8 * total) if decay == "wsd" else None,
        final_lr=3e-5,
    )
    schedule = build_schedule(spec)
    rng = np.random.default_rng(run.pk)
    loss = annealing_loss({"L0": 2.0, "A": 3.0, "alpha": 0.5, "C": 0.0005}, schedule, steps, lr_scale=3e-4)
    loss = loss + rng.normal(0, 0.01, size=loss.shape)
    points = [("train_loss", float(v), int(s), int(s)) for s, v in zip(steps, loss, strict=True)]
    points += [("lr", float(schedule.lr[int(s)]), int(s), int(s)) for s in steps]
    metric_points_append(run_id=run.pk, points=points, stored=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000, help="points per run (half loss, half lr)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    team = Team.objects.create(slug=f"bench-curves-{int(time.time())}")
    try:
        total = args.points // 2
        steps = np.arange(1, total + 1)
        runs = [Run.objects.create(team=team, family="big", n_params=100_000_000, n_tokens=10**10, final_loss=3.0)]
        runs.append(Run.objects.create(team=team, family="big", n_params=100_000_000, n_tokens=10**10, final_loss=3.0))

        def log_both() -> None:
            for run, decay in zip(runs, ["cosine", "wsd"], strict=True):
                log(run, decay, steps, total)

        timed(f"log 2 x {args.points} points", log_both)
        timed("fingerprint", lambda: curve_family_fingerprint(team_id=team.pk, family="big"))
        data = timed("read the histories", lambda: curve_family_data(team_id=team.pk, family="big"))
        for law in curve_laws():
            timed(f"fit {law} (with held-out forecasts)", partial(fit_family_curves, data.runs, law=law))
        scope = CurveScope.objects.create(
            team=team, family="big", dirty_since=timezone.now(), changed_at=timezone.now()
        )
        timed("whole refresh (every law)", lambda: curve_scope_refresh(scope_id=scope.pk))
        last = float(data.runs[0].loss[-1])  # 1,000 more points: the run goes on at its final rate
        more = [("train_loss", last, total + i, total + i) for i in range(1, 501)]
        more += [("lr", 3e-5, total + i, total + i) for i in range(1, 501)]
        metric_points_append(run_id=runs[0].pk, points=more, stored=0)
        CurveScope.objects.filter(pk=scope.pk).update(dirty_since=timezone.now(), changed_at=timezone.now())
        timed("refresh after 1,000 more points", lambda: curve_scope_refresh(scope_id=scope.pk))
        CurveScope.objects.filter(pk=scope.pk).update(dirty_since=timezone.now(), changed_at=timezone.now())
        timed("refresh with nothing changed", lambda: curve_scope_refresh(scope_id=scope.pk))
        for fit in FamilyCurveFit.objects.filter(team=team).order_by("law", "version"):
            print(fit, "held-out MAE", fit.heldout.get("mae"), fit.error)
    finally:
        team.delete()


if __name__ == "__main__":
    main()
