"""The stack the benchmarks run against: a fresh database, gunicorn and Celery workers on 127.0.0.1."""

import atexit
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def machine_line() -> str:
    """Cores, CPU model, Python and date, for the figures' provenance."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return f"machine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    """A private redis-server on a free loopback port, no persistence: a benchmark never flushes or fills a Redis
    database it did not create (a developer's machine runs other things)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly"]
        command += ["no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


class Stack:
    """Production settings on a fresh PostgreSQL database (dropped and recreated) and a broker: `broker_url`, or
    with broker_url "private" a redis-server of its own for the life of the process (stopped at exit)."""

    def __init__(self, database_url: str, broker_url: str = "filesystem://", **extra_env: str) -> None:
        if broker_url == "private":
            self.redis = Redis(Path(tempfile.mkdtemp(prefix="bitscale-bench-redis-")))
            self.redis.start()
            atexit.register(self.redis.stop)
            broker_url = self.redis.url(0)
        self.database_url = database_url
        self.dbname = database_url.rsplit("/", 1)[1]
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        for sql in (f"DROP DATABASE IF EXISTS {self.dbname}", f"CREATE DATABASE {self.dbname}"):
            self.psql(sql, database="postgres")
        self.manage("migrate", "--noinput")

    def psql(self, sql: str, *, database: str | None = None) -> None:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database or self.dbname, "-qc", sql], check=True
        )

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def team_key(self, slug: str) -> str:
        """Create a team and return a new read-write key for it."""
        self.manage("create_team", slug)
        return self.manage("create_api_key", slug).strip().splitlines()[-1]

    @contextmanager
    def serving(self, *, port: int, web_processes: int, worker_processes: int = 0) -> Iterator[str]:
        """gunicorn (and a Celery worker on both queues) for the duration of the block; yields the base URL."""
        processes = [
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "gunicorn",
                    "config.wsgi",
                    "-b",
                    f"127.0.0.1:{port}",
                    "-w",
                    str(web_processes),
                    "--access-logfile",
                    "/dev/null",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=self.env,
            )
        ]
        if worker_processes:
            processes.append(
                subprocess.Popen(
                    [
                        PY,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-Q",
                        "celery,fits",
                        f"--concurrency={worker_processes}",
                        "-l",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=self.env,
                )
            )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield base
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
