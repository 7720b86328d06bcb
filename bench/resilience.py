"""Issue 27's probe against a production-like stack: slow clients, malformed bodies and a Redis outage.

    .venv/bin/python bench/resilience.py [--database-url postgres://postgres@127.0.0.1:5432/bitscale_bench]
                                         [--outage 60] [--stalls 8]

The stack: a fresh PostgreSQL database (the URL's database is dropped and recreated), a private redis-server on a
free loopback port as broker (db 0) and cache (db 1), as compose has them; gunicorn with the image's command
(`gunicorn -c config/gunicorn.py config.wsgi`, WEB_CONCURRENCY=2), one `celery worker` (2 processes) and
`celery beat`, all with production settings and their defaults. Then:

1. Stalled uploads: `--stalls` clients each send the headers of a 1000-byte POST /api/v1/runs/ and one byte,
   then wait 45 s (the issue's trigger). /healthz is timed every 0.5 s meanwhile; each stall's answer and the
   gunicorn master and worker pids are checked afterwards.
2. Malformed chunked bodies: a chunk size `zz`, a chunk without its CRLF, a body cut short, `gzip, chunked`:
   their statuses.
3. Redis outage: one client posts runs (one family per phase: before, during, after) every 0.1 s; Redis is
   stopped for `--outage` seconds, then started again. Every post's status and time, /healthz's time during the
   outage, whether every accepted post is stored, and the time from Redis's return until the fits of the family
   posted during the outage are queued and until they have succeeded.

Prints one line per figure. Only loopback traffic; every loop is bounded.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from stack import PY, ROOT, Redis, Stack, free_port, machine_line, percentile

sys.path.insert(0, str(ROOT))

STALLED = (
    b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
)
CHUNKED = (
    b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
)


def raw(port: int, data: bytes, *, half_close: bool = False, timeout: float = 60.0) -> bytes:
    """What the server answers to `data` sent on a new connection (and then nothing, or an end of sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return received


def status_of(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def timed_healthz(base: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = httpx.get(f"{base}/healthz", timeout=10).status_code
    except httpx.TransportError:
        status = 0
    return status, time.monotonic() - started


def children(pid: int) -> list[int]:
    return sorted(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def stalled_uploads(port: int, key: str, count: int, master: subprocess.Popen[bytes]) -> None:
    base = f"http://127.0.0.1:{port}"
    workers = children(master.pid)
    answers: list[tuple[float, bytes]] = []

    def stall() -> None:
        started = time.monotonic()
        answer = raw(port, STALLED % key.encode(), timeout=45)
        answers.append((time.monotonic() - started, answer))

    threads = [threading.Thread(target=stall) for _ in range(count)]
    for thread in threads:
        thread.start()
    timings = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        timings.append(timed_healthz(base))
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=60)
    late = timed_healthz(base)  # the probe asked at 35 s
    statuses = sorted({status_of(a) for _, a in answers})
    ended = [round(t, 1) for t, _ in answers]
    print(
        f"stalled uploads: {count}; /healthz while held: {len(timings)} calls, "
        f"statuses {sorted({s for s, _ in timings})}, "
        f"max {max(t for _, t in timings) * 1000:.0f} ms, p50 {percentile([t for _, t in timings], 50) * 1000:.0f} ms; "
        f"after: {late[0]} in {late[1] * 1000:.0f} ms"
    )
    print(
        f"  each stall answered {statuses} (JSON: {all(b'application/json' in a for _, a in answers)}) after "
        f"{min(ended)}-{max(ended)} s; master alive: {master.poll() is None}; "
        f"workers unchanged: {children(master.pid) == workers}"
    )


def malformed_chunked(port: int, key: str) -> None:
    head = CHUNKED % key.encode()
    cases = {
        "chunk size zz": head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "chunk without CRLF": head + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        "gzip, chunked": head + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    }
    results = {name: status_of(raw(port, data, timeout=15)) for name, data in cases.items()}
    results["cut short"] = status_of(raw(port, head + b"Transfer-Encoding: chunked\r\n\r\n10\r\n{}", half_close=True))
    print(f"malformed chunked bodies: {results}")


def outage(base: str, key: str, redis: Redis, seconds: float, database: Stack) -> None:
    from fits.laws import kumar_synthetic

    noisy, _ = kumar_synthetic(seed=7)
    headers = {"Authorization": f"Bearer {key}"}
    results: list[tuple[str, int, float, float]] = []  # phase, status, time, at
    phase = {"name": "before"}
    stop = threading.Event()

    def post_loop() -> None:
        i = 0
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            while not stop.is_set():
                n = i % noisy.n_runs
                body = {
                    "external_id": f"{phase['name']}-{i}",
                    "family": f"k-{phase['name']}",
                    "n_params": round(float(noisy.n_params[n])),
                    "n_tokens": round(float(noisy.n_tokens[n])),
                    "weight_bits": float(noisy.weight_bits[n]),
                    "activation_bits": float(noisy.activation_bits[n]),
                    "kv_bits": float(noisy.kv_bits[n]),
                    "final_loss": float(noisy.final_loss[n]),
                }
                started = time.monotonic()
                try:
                    status = client.post("/api/v1/runs/", json=body).status_code
                except httpx.TransportError:
                    status = 0
                results.append((phase["name"], status, time.monotonic() - started, started))
                i += 1
                time.sleep(0.1)

    poster = threading.Thread(target=post_loop)
    poster.start()
    time.sleep(10)
    redis.stop()
    phase["name"] = "down"
    down_at = time.monotonic()
    health = []
    while time.monotonic() - down_at < seconds:
        health.append(timed_healthz(base))
        time.sleep(1)
    redis.start()
    back_at = time.monotonic()
    phase["name"] = "after"
    time.sleep(10)
    stop.set()
    poster.join(timeout=60)

    during = [r for r in results if r[0] == "down"]
    print(
        f"redis outage {seconds:.0f} s: posts {len(results)} ({len(during)} during), statuses "
        f"{sorted({r[1] for r in results})}, 5xx {sum(1 for r in results if r[1] >= 500)}; during: max "
        f"{max(r[2] for r in during) * 1000:.0f} ms, p99 {percentile([r[2] for r in during], 99) * 1000:.0f} ms, "
        f"p50 {percentile([r[2] for r in during], 50) * 1000:.0f} ms"
    )
    print(
        f"  /healthz during: statuses {sorted({s for s, _ in health})}, max {max(t for _, t in health) * 1000:.0f} "
        f"ms, p50 {percentile([t for _, t in health], 50) * 1000:.0f} ms"
    )
    accepted = sum(1 for r in results if r[1] in (200, 201))
    stored = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database.dbname, "-tAc", "SELECT count(*) FROM runs_run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"  accepted posts {accepted}, stored runs {stored}")

    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        queued_at: dict[str, float] = {}
        done_at: dict[str, float] = {}
        deadline = back_at + 300
        while time.monotonic() < deadline and len(done_at) < 2:
            for law in ("chinchilla", "precision"):
                fits = client.get("/api/v1/fits/", params={"family": "k-down", "law": law}).json()["results"]
                if fits:
                    queued_at.setdefault(law, time.monotonic() - back_at)
                    if fits[0]["status"] in ("succeeded", "failed"):
                        done_at.setdefault(law, time.monotonic() - back_at)
            time.sleep(1)
    print(
        "  after Redis's return, fits of the family posted during the outage: queued "
        + ", ".join(f"{law} {t:.0f} s" for law, t in sorted(queued_at.items()))
        + "; finished "
        + ", ".join(f"{law} {t:.0f} s" for law, t in sorted(done_at.items()))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_bench")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds Redis stays down")
    parser.add_argument("--stalls", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=[], choices=["stalls", "chunked", "outage"])
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("needs redis-server")

    folder = Path(tempfile.mkdtemp(prefix="bitscale-resilience-"))
    redis = Redis(folder)
    redis.start()
    port = free_port()
    stack = Stack(
        args.database_url,
        redis.url(0),
        CACHE_URL=redis.url(1),
        DJANGO_HTTPS="false",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_FORMAT="plain",
    )
    key = stack.team_key("probe")
    logs = {name: (folder / f"{name}.log").open("w") for name in ("web", "worker", "beat")}
    commands = {
        "web": [PY, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
        "worker": [PY, "-m", "celery", "-A", "config", "worker", "-Q", "celery,fits", "--concurrency=2", "-l", "info"],
        "beat": [PY, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", str(folder / "beat-schedule")],
    }
    processes = {
        name: subprocess.Popen(
            command, cwd=ROOT, env=stack.env, stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True
        )
        for name, command in commands.items()
    }
    base = f"http://127.0.0.1:{port}"
    print(machine_line())
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; logs in {folder}")
    try:
        for _ in range(150):
            if timed_healthz(base)[0] == 200:
                break
            time.sleep(0.2)
        if "stalls" not in args.skip:
            stalled_uploads(port, key, args.stalls, processes["web"])
        if "chunked" not in args.skip:
            malformed_chunked(port, key)
        if "outage" not in args.skip:
            outage(base, key, redis, args.outage, stack)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        redis.stop()


if __name__ == "__main__":
    main()
