"""The production web server for tests: `gunicorn -c config/gunicorn.py config.wsgi` with production settings on
a free loopback port (SQLite, an in-memory broker), its worker pids, and raw sockets to it."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "k7#Qv9$Lm2@Xp5&Rt8*Wz3!Hb6^Nc1%Jd4(Fg0)Sy-Ue_Ai+Ok=Pl<Mn>Bv?Cx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def healthz(port: int, timeout: float = 5) -> int:
    """/healthz's status, or 0 when it did not answer within `timeout` seconds."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def workers(self) -> list[int]:
        """The master's worker processes (Linux: /proc)."""
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def connections_per_worker(self) -> dict[int, int]:
        """Established connections to the server's port held by each worker (Linux: /proc)."""
        established: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.port and fields[3] == "01":  # ESTABLISHED
                    established.add(fields[9])  # the socket's inode
        counts = {}
        for worker in self.workers():
            inodes = set()
            for fd in Path(f"/proc/{worker}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            counts[worker] = len(inodes & established)
        return counts

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


@contextmanager
def gunicorn(tmp_path: Path, **environment: str) -> Iterator[Gunicorn]:
    """The image's command (config/gunicorn.py) with production settings; `environment` adds or overrides."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "PROMETHEUS", "WEB_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_HTTPS": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "CELERY_BROKER_URL": "memory://",
        "PORT": str(port),
        **environment,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = Gunicorn(process=process, port=port, log=log)
        try:
            workers = int(env.get("WEB_CONCURRENCY", "4"))
            started = wait(lambda: healthz(port) == 200 and len(server.workers()) == workers, 60)
            assert started, server.tail()
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)


def send_raw(port: int, data: bytes) -> socket.socket:
    """A connection that sends `data` and then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` seconds of silence)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    finally:
        sock.close()
    return received
