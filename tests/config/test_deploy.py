"""Production settings pass `manage.py check --deploy` and refuse to start without their secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_BROKER_URL"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    done = _check(
        DJANGO_SECRET_KEY="k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.db'}",
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        DJANGO_ALLOWED_HOSTS="bitscale.example.com",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    done = _check(DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.db'}", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in done.stderr


@pytest.mark.parametrize(
    "key",
    [
        "change-me-to-a-long-random-string",
        "change-me-to-a-long-random-string-before-exposing-this-anywhere",
        "insecure-local-development-key-do-not-use-in-production",
        "  ",
    ],
)
def test_production_refuses_a_published_or_blank_secret_key(tmp_path, key):
    done = _check(
        DJANGO_SECRET_KEY=key,
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.db'}",
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        DJANGO_ALLOWED_HOSTS="bitscale.example.com",
    )
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set to a secret value" in done.stderr


def test_production_refuses_an_empty_broker_url(tmp_path):
    done = _check(
        DJANGO_SECRET_KEY="k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.db'}",
        CELERY_BROKER_URL="",
    )
    assert done.returncode != 0
    assert "CELERY_BROKER_URL must be set" in done.stderr
