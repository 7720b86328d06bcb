"""Benchmarks that call the API in-process: Django on a fresh SQLite file and a team with a fitted precision law.

Shared by bench/plan_api.py and bench/request_caps.py; nothing here listens on a socket.
"""

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class FittedTeam:
    client: Any  # a DRF APIClient with the team's read-write key
    result: Any  # the FitResult stored as the family's current fit
    fit_seconds: float


def fitted_team(slug: str, *, draws: int) -> FittedTeam:
    """Set Django up (test settings, a fresh SQLite file unless DATABASE_URL is set), fit the precision law to Kumar
    et al.'s synthetic sweep with `draws` bootstrap draws, and store it as family "kumar" of team `slug`."""
    workdir = tempfile.mkdtemp(prefix=f"bitscale-{slug}-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from fits.laws import fit_law, kumar_synthetic
    from fits.models import Fit
    from runs.models import Team
    from runs.services import api_key_create

    setup_test_environment()
    call_command("migrate", verbosity=0)
    team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": f"Benchmark {slug}"})
    _, secret = api_key_create(team=team, read_only=False, label="bench")
    noisy, _ = kumar_synthetic()
    start = time.perf_counter()
    result = fit_law("precision", noisy, n_bootstrap=draws, seed=0)
    fit_seconds = time.perf_counter() - start
    Fit.objects.filter(team=team).delete()
    Fit.objects.create(
        team=team,
        family="kumar",
        law="precision",
        version=1,
        status=Fit.Status.SUCCEEDED,
        n_bootstrap=draws,
        **Fit.result_fields(result),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return FittedTeam(client=client, result=result, fit_seconds=fit_seconds)
