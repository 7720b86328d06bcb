"""Backup and restore exactly as docs/operations.md says: pg_dump --format=custom, pg_restore --clean
--if-exists --no-owner from standard input, then `migrate` (nothing to apply) and the data is back."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from runs.models import Run, Team
from tests.factories import RunFactory, TeamFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def _url(name: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _psql(sql: str) -> None:
    subprocess.run(["psql", _url("postgres"), "-qc", sql], check=True, capture_output=True, timeout=60)


def _manage(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_dump_restores_into_an_empty_database_and_over_a_changed_one(tmp_path):
    if connection.vendor != "postgresql" or not shutil.which("pg_dump"):
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL and its client tools")
        pytest.skip("needs PostgreSQL (DATABASE_URL) and pg_dump")
    team = TeamFactory.create(slug="backed-up")
    RunFactory.create_batch(3, team=team)
    source, restored = connection.settings_dict["NAME"], f"{connection.settings_dict['NAME']}_restore"
    dump = tmp_path / "bitscale.dump"
    with dump.open("wb") as out:
        subprocess.run(["pg_dump", "--format=custom", _url(source)], stdout=out, check=True, timeout=120)
    _psql(f"DROP DATABASE IF EXISTS {restored}")
    _psql(f"CREATE DATABASE {restored}")
    try:
        for _ in range(2):  # the second time over data changed since the dump: --clean replaces it
            with dump.open("rb") as dumped:
                subprocess.run(
                    ["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_url(restored)}"],
                    stdin=dumped,
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
            migrated = _manage(_url(restored), "migrate", "--noinput")
            assert migrated.returncode == 0, migrated.stderr
            assert "No migrations to apply." in migrated.stdout
            code = (
                "from runs.models import Run; from runs.models import Team; "
                "print(Run.objects.filter(team__slug='backed-up').count(), Team.objects.count())"
            )
            counted = _manage(_url(restored), "shell", "-v", "0", "-c", code)
            assert counted.stdout.split() == ["3", str(Team.objects.count())], counted.stderr
            assert Run.objects.filter(team=team).count() == 3
            _manage(_url(restored), "shell", "-v", "0", "-c", "from runs.models import Run; Run.objects.all().delete()")
    finally:
        _psql(f"DROP DATABASE IF EXISTS {restored}")
