"""The image's file set, built without a container engine: the files `docker build` would copy (the tree
filtered by .dockerignore, tests/config/buildcontext.py), the Dockerfile's own RUN steps executed on them, then
`check --deploy`, `migrate` and the image's CMD with production settings.

Only what cannot run here is substituted, each visibly in `_rewrite`:
- `pip install` becomes `pip install --dry-run --no-index`: the dependencies are not downloaded but must all be
  satisfied, at the versions constraints.txt pins, by the current environment (which this reuses);
- `python` runs with -S and PYTHONPATH=<image folder>:<this environment's site-packages>, so nothing outside
  the image's files can be imported as project code (this environment holds the project in editable mode,
  whose import hook points at another checkout);
- /app and /tmp become temporary folders; `useradd` is checked, not run.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.config.buildcontext import assemble, instructions, parse_rules

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
PYTHON = f"{sys.executable} -S"
SECRET = "k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx"

pytestmark = pytest.mark.slow


def _rewrite(segment: str, app: Path, tmp: Path) -> str | None:
    segment = segment.strip().replace("/app", str(app)).replace("/tmp/", f"{tmp}/")
    if segment.startswith("useradd "):
        return None
    segment = re.sub(r"(^|\s)pip install --no-cache-dir ", rf"\1{PYTHON} -m pip install --dry-run --no-index ", segment)
    return re.sub(r"(^|\s)python ", rf"\1{PYTHON} ", segment)


class Image:
    """The Dockerfile's steps played on a folder."""

    def __init__(self, root: Path, tmp: Path, extra_ignores: str = "") -> None:
        self.app, self.tmp = tmp / "app", tmp / "tmp"
        self.app.mkdir()
        self.tmp.mkdir()
        self.env: dict[str, str] = {}
        self.user = ""
        self.users_created: list[str] = []
        self.cmd: list[str] = []
        self.logs: list[str] = []
        extra = parse_rules(extra_ignores)
        for keyword, args in instructions((root / "Dockerfile").read_text()):
            if keyword == "FROM":
                assert args.startswith("python:3.11"), args  # the Python this environment runs
            elif keyword == "ENV":
                for pair in shlex.split(args):
                    name, _, value = pair.partition("=")
                    self.env[name] = value
            elif keyword == "WORKDIR":
                assert args == "/app"
            elif keyword == "COPY":
                *sources, _ = shlex.split(args)
                assemble(root, self.app, None if sources == ["."] else sources, extra)
            elif keyword == "RUN":
                self.run_step(args)
            elif keyword == "USER":
                self.user = args
            elif keyword == "CMD":
                self.cmd = json.loads(args)

    def environment(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.tmp), "LANG": "C.UTF-8", **self.env, **extra}
        env["PYTHONPATH"] = env["PYTHONPATH"].replace("/app", str(self.app)) + os.pathsep + SITE_PACKAGES
        return env

    def run_step(self, command: str) -> None:
        segments = [_rewrite(part, self.app, self.tmp) for part in command.split(" && ")]
        self.users_created += [part.split()[-1] for part in command.split(" && ") if part.strip().startswith("useradd")]
        done = self.sh(" && ".join(s for s in segments if s))
        assert done.returncode == 0, f"RUN {command}\n{done.stdout}\n{done.stderr}"

    def sh(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["sh", "-c", command],
            cwd=self.app,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.logs.append(done.stdout + done.stderr)
        return done

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.sh(f"{PYTHON} manage.py {shlex.join(args)}", **env)


def production(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{tmp / 'image.db'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "DJANGO_ALLOWED_HOSTS": "bitscale.example.com",
        **extra,
    }


def test_the_image_file_set_builds_and_passes_the_deploy_check(tmp_path):
    image = Image(ROOT, tmp_path)
    files = {path.relative_to(image.app).as_posix() for path in image.app.rglob("*") if path.is_file()}

    # The tree went in whole (every package with its migrations and templates), the clutter did not.
    for package in [p.parent.name for p in ROOT.glob("*/__init__.py")]:
        if package not in {"tests", "bench", "client", "examples"}:
            assert f"{package}/__init__.py" in files, package
    assert not any(part in {".git", "tests", "__pycache__", ".venv"} for path in files for part in path.split("/"))
    assert {"manage.py", "config/gunicorn.py"} <= files

    # Built by the Dockerfile's RUN: collected, compressed static files (admin and the API docs' assets).
    static = image.app / "staticfiles"
    assert (static / "admin/css/base.css").is_file()
    assert (static / "admin/css/base.css.gz").is_file()
    assert list(static.glob("drf_spectacular_sidecar/swagger-ui-dist/*.js"))

    # Every installed app is imported from the image's files, none from elsewhere.
    probe = (
        "import django, json, config, apikit; django.setup(); from django.apps import apps; "
        "print(json.dumps({'config': config.__path__[0], 'apikit': apikit.__path__[0], "
        "**{a.name: a.path for a in apps.get_app_configs()}}))"
    )
    done = image.sh(f"{PYTHON} -c {shlex.quote(probe)}", **production(tmp_path))
    assert done.returncode == 0, done.stderr
    paths = json.loads(done.stdout)
    ours = {name: path for name, path in paths.items() if not path.startswith(SITE_PACKAGES)}
    assert {"config", "apikit", "runs", "fits", "planner", "workers", "ops"} <= set(ours)
    for name, path in ours.items():
        assert Path(path).is_relative_to(image.app), (name, path)

    checked = image.manage("check", "--deploy", "--fail-level", "WARNING", **production(tmp_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    migrated = image.manage("migrate", "--noinput", **production(tmp_path))
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying ops.0001_initial... OK" in migrated.stdout
    pending = image.manage("makemigrations", "--check", "--dry-run", **production(tmp_path))
    assert pending.returncode == 0, pending.stdout + pending.stderr
    admin = image.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        **production(tmp_path, DJANGO_SUPERUSER_PASSWORD="a-long-admin-password"),
    )
    assert admin.returncode == 0, admin.stdout + admin.stderr

    # The CMD loads the app with the gunicorn settings of the image.
    assert image.cmd[:3] == ["gunicorn", "-c", "config/gunicorn.py"]
    command = f"{PYTHON} -m gunicorn {shlex.join(image.cmd[1:])} --check-config"
    loaded = image.sh(command, **production(tmp_path, DJANGO_HTTPS="false"))
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr

    # Processes run as an unprivileged user the image creates.
    assert image.user not in {"", "root", "0"}
    assert image.users_created == [image.user]


def test_an_image_missing_a_package_fails_here_as_it_would_in_docker(tmp_path):
    """The check above can fail: leave out one installed app and collectstatic stops, as the old image did."""
    with pytest.raises(AssertionError, match="No module named 'workers'"):
        Image(ROOT, tmp_path, extra_ignores="workers\n")
