"""The gunicorn master survives its workers dying together: its SIGCHLD hook imports nothing and cannot raise.

A worker that dies (killed, or timed out on a stalled upload) makes the master run `child_exit` inside its
SIGCHLD handler. When several die at once the handler re-enters itself; an import there was caught half done
and the master exited, taking the whole web tier down.
"""

import builtins
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from config import gunicorn as gunicorn_config

ROOT = Path(__file__).resolve().parents[2]


def test_child_exit_imports_nothing_and_drops_the_dead_workers_gauges(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(gunicorn_config, "_mark_process_dead", None)
    gunicorn_config.on_starting(server=None)
    dead, alive = tmp_path / "gauge_livesum_4242.db", tmp_path / "gauge_livesum_4343.db"
    dead.write_bytes(b"x")
    alive.write_bytes(b"x")

    def refuse(*args, **kwargs):
        raise AssertionError(f"child_exit imported {args[0]}")

    monkeypatch.setattr(builtins, "__import__", refuse)
    gunicorn_config.child_exit(server=None, worker=SimpleNamespace(pid=4242))
    monkeypatch.undo()
    assert not dead.exists()
    assert alive.exists()


def test_child_exit_never_raises(monkeypatch):
    def broken(pid: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(gunicorn_config, "_mark_process_dead", broken)
    gunicorn_config.child_exit(server=None, worker=SimpleNamespace(pid=1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except OSError:
        return 0


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()]


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker pids from /proc (Linux)")
def test_the_master_survives_all_its_workers_killed_at_once_again_and_again(tmp_path):
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "PROMETHEUS"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_HTTPS": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "CELERY_BROKER_URL": "memory://",
        "PORT": str(port),
        "WEB_CONCURRENCY": "4",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            assert _wait(lambda: _healthz(port) == 200 and len(_workers(master.pid)) == 4, 60), log.read_text()
            for _ in range(5):
                before = _workers(master.pid)
                for pid in before:
                    os.kill(pid, signal.SIGKILL)
                replaced = _wait(lambda b=set(before): len(set(_workers(master.pid)) - b) == 4, 30)
                assert master.poll() is None, log.read_text()[-3000:]
                assert replaced, log.read_text()[-3000:]
            assert _wait(lambda: _healthz(port) == 200, 30), log.read_text()[-3000:]
        finally:
            master.terminate()
            master.wait(timeout=30)


def test_a_plain_gunicorn_from_the_checkout_reads_the_images_settings():
    # ./gunicorn.conf.py is what gunicorn reads without -c (the benches' `gunicorn config.wsgi`).
    from gunicorn.config import Config

    def load(path: Path) -> Config:
        config = Config()
        namespace: dict[str, object] = {"__file__": str(path)}
        exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - our own settings file
        for name, value in namespace.items():
            if name in config.settings:
                config.set(name, value)
        return config

    plain, image = load(ROOT / "gunicorn.conf.py"), load(ROOT / "config" / "gunicorn.py")
    for name in ("worker_class_str", "threads", "keepalive", "workers", "bind"):
        assert getattr(plain, name) == getattr(image, name), name
    assert plain.keepalive == int(os.environ.get("WEB_KEEPALIVE_SECONDS", "5"))
    assert plain.worker_class_str == "config.gunicorn_worker.BoundedThreadWorker"
    assert plain.settings["on_starting"].get() is gunicorn_config.on_starting


def test_an_access_log_to_dev_null_is_not_formatted_any_other_is(tmp_path):
    from gunicorn.config import Config

    from config.gunicorn_worker import AccessLogger

    formatted = []

    def logger(accesslog: str) -> AccessLogger:
        config = Config()
        config.set("accesslog", accesslog)
        found = AccessLogger(config)
        found.atoms = lambda *args: formatted.append(accesslog) or {}
        return found

    logger(os.devnull).access(None, None, {}, None)
    assert formatted == []
    target = str(tmp_path / "access.log")
    logger(target).access(None, None, {}, None)
    assert formatted == [target]
