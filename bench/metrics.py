"""/metrics scrape cost: the deployment readings (fits per status, refit lag, chunk histogram, workers, Redis
queue lengths) computed for one scrape, on a database holding many fits and dirty scopes.

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... .venv/bin/python bench/metrics.py [--fits 20000]

Adds a throwaway team with the rows, times ten renders (after one warm-up), prints median and maximum, and
deletes the team again. Needs a migrated database.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from fits.models import Fit, FitScope  # noqa: E402
from ops.metrics import render  # noqa: E402
from runs.models import Team  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fits", type=int, default=20_000)
    parser.add_argument("--scopes", type=int, default=2_000)
    args = parser.parse_args()
    team = Team.objects.create(slug=f"bench-metrics-{int(time.time())}")
    try:
        laws = ["chinchilla", "precision", "fp"]
        statuses = ["succeeded"] * 8 + ["failed"] * 2
        Fit.objects.bulk_create(
            [
                Fit(team=team, family=f"f{i // 3}", law=laws[i % 3], version=1, status=statuses[i % 10])
                for i in range(args.fits)
            ],
            batch_size=2_000,
        )
        now = timezone.now()
        FitScope.objects.bulk_create(
            [FitScope(team=team, family=f"f{i}", law="chinchilla", dirty_since=now) for i in range(args.scopes)]
        )
        render()
        times = []
        for _ in range(10):
            started = time.perf_counter()
            body = render()
            times.append(time.perf_counter() - started)
        times.sort()
        print(
            f"fits={args.fits} dirty scopes={args.scopes}: one scrape median {times[5] * 1000:.1f} ms, "
            f"max {times[-1] * 1000:.1f} ms, {len(body)} bytes"
        )
    finally:
        team.delete()


if __name__ == "__main__":
    main()
