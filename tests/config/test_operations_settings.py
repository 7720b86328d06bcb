"""Production settings for operators: DJANGO_HTTPS keeps the admin login working either way; Sentry and the
log format are chosen by environment variables and start-up fails on a malformed one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx"

# Logs in as the admin through the real login form (CSRF enforced) and reports what the browser would see.
LOGIN = """
import json, django
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User
from django.test import Client
call_command("migrate", verbosity=0)
User.objects.create_superuser("admin", "a@example.com", "pw-9f8e7d")
secure = {secure}
browser = Client(enforce_csrf_checks=True)
plain = browser.get("/admin/login/")
form = browser.get("/admin/login/", secure=secure)
token = form.cookies["csrftoken"]
referer = ("https" if secure else "http") + "://testserver/admin/login/"
fields = {{"username": "admin", "password": "pw-9f8e7d", "csrfmiddlewaretoken": token.value, "next": "/admin/"}}
login = browser.post("/admin/login/?next=/admin/", fields, secure=secure, HTTP_REFERER=referer)
print(json.dumps({{
    "plain_status": plain.status_code, "plain_location": plain.get("Location"),
    "csrf_secure": bool(token["secure"]), "login_status": login.status_code, "login_location": login.get("Location"),
    "session_secure": bool(login.cookies["sessionid"]["secure"]) if "sessionid" in login.cookies else None,
    "admin_status": browser.get("/admin/", secure=secure).status_code,
    "hsts": form.get("Strict-Transport-Security"),
}}))
"""


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "SENTRY_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "DJANGO_ALLOWED_HOSTS": "localhost,testserver",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
    )


def _login(tmp_path: Path, *, https: str, secure: bool) -> dict[str, object]:
    done = _run(LOGIN.format(secure=secure), tmp_path, DJANGO_HTTPS=https)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_admin_login_works_over_plain_http_when_https_is_off(tmp_path):
    seen = _login(tmp_path, https="false", secure=False)
    assert seen["plain_status"] == 200  # no redirect to https://
    assert seen["csrf_secure"] is False  # a browser keeps the cookie over http://
    assert seen["session_secure"] is False
    assert (seen["login_status"], seen["login_location"]) == (302, "/admin/")
    assert seen["admin_status"] == 200
    assert seen["hsts"] is None


def test_admin_login_works_over_https_with_secure_cookies_when_https_is_on(tmp_path):
    seen = _login(tmp_path, https="true", secure=True)
    assert seen["plain_status"] == 301
    assert str(seen["plain_location"]).startswith("https://")
    assert seen["csrf_secure"] is True
    assert seen["session_secure"] is True
    assert (seen["login_status"], seen["login_location"]) == (302, "/admin/")
    assert seen["admin_status"] == 200
    assert str(seen["hsts"]).startswith("max-age=31536000")


def test_plain_http_passes_the_deploy_check_as_a_deliberate_choice(tmp_path):
    code = "import sys; from django.core.management import execute_from_command_line as m; m(sys.argv)"
    done = _run(
        code.replace("sys.argv", "['x', 'check', '--deploy', '--fail-level', 'WARNING']"),
        tmp_path,
        DJANGO_HTTPS="false",
    )
    assert done.returncode == 0, done.stdout + done.stderr


SENTRY_PROBE = (
    "import django; django.setup(); import sentry_sdk; c = sentry_sdk.get_client(); "
    "print(c.is_active(), c.dsn, c.options.get('send_default_pii'), *sorted(getattr(c, 'integrations', {})))"
)


def test_sentry_is_off_without_a_dsn(tmp_path):
    done = _run(SENTRY_PROBE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"


def test_sentry_reports_to_the_configured_dsn(tmp_path):
    dsn = "https://publickey@sentry.example.invalid/42"
    done = _run(SENTRY_PROBE, tmp_path, SENTRY_DSN=dsn)
    assert done.returncode == 0, done.stderr
    active, configured, personal_data, *integrations = done.stdout.split()
    assert (active, configured, personal_data) == ("True", dsn, "False")
    assert {"django", "celery"} <= set(integrations)  # errors of requests and of tasks


@pytest.mark.parametrize(("variable", "value"), [("LOG_FORMAT", "xml"), ("DJANGO_HTTPS", "maybe")])
def test_a_malformed_operations_variable_stops_start_up(tmp_path, variable, value):
    done = _run("import django; django.setup()", tmp_path, **{variable: value})
    assert done.returncode != 0
    assert variable in done.stderr


def test_json_log_format_writes_json_lines(tmp_path):
    code = "import django, logging; django.setup(); logging.getLogger('bitscale.x').warning('hello %s', 'there')"
    done = _run(code, tmp_path, LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert (entry["message"], entry["level"], entry["request_id"]) == ("hello there", "WARNING", "-")
