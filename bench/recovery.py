"""Recovery after a worker dies mid-bootstrap: from SIGKILL to the fit published by another worker.

    .venv/bin/python bench/recovery.py [--database-url ...] [--broker-url redis://...] [--draws 100]

Production settings on a fresh PostgreSQL database and Redis (bench/stack.py), gunicorn, one `celery worker`,
and `celery beat` (the sweep every FIT_SWEEP_INTERVAL_SECONDS, default 60 s), all with the default
FIT_STUCK_AFTER_SECONDS and FIT_HEARTBEAT_SECONDS. Kumar's synthetic sweep (1,000 runs) is posted in one bulk
request; once the precision fit's bootstrap is computing, the worker's whole process group is killed (SIGKILL:
no acknowledgement, no warm shutdown) and a new worker starts. Prints the time from the kill to the takeover
(the fit's attempt 2 claimed) and to the fit published, and the fit's attempt count. Bounded: gives up after
6 minutes.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import httpx
from stack import PY, ROOT, Stack, machine_line

sys.path.insert(0, str(ROOT))


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [PY, "-m", "celery", "-A", "config", "worker", "-Q", "celery,fits", "--concurrency=2", "-l", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_bench_recovery")
    parser.add_argument(
        "--broker-url",
        default="private",
        help="a Redis URL to use (its database is used as is); default: a private redis-server",
    )
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    from fits.laws import kumar_synthetic

    stack = Stack(args.database_url, args.broker_url, FIT_BOOTSTRAP_DRAWS=str(args.draws), FIT_CHUNK_SIZE="25")
    key = stack.team_key("bench")
    noisy, _ = kumar_synthetic(seed=7)
    bodies = [
        {
            "external_id": f"k-{i}",
            "family": "k",
            "n_params": round(float(noisy.n_params[i])),
            "n_tokens": round(float(noisy.n_tokens[i])),
            "weight_bits": float(noisy.weight_bits[i]),
            "activation_bits": float(noisy.activation_bits[i]),
            "kv_bits": float(noisy.kv_bits[i]),
            "final_loss": float(noisy.final_loss[i]),
        }
        for i in range(min(noisy.n_runs, 1000))
    ]
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
    beat = subprocess.Popen(
        [PY, "-m", "celery", "-A", "config", "beat", "-l", "warning", "-s", f"/tmp/bitscale-beat-{os.getpid()}"],
        cwd=ROOT,
        env=stack.env,
        start_new_session=True,
    )
    first = worker(stack.env)
    second = None
    print(machine_line())
    try:
        with (
            stack.serving(port=args.port, web_processes=1) as base,
            httpx.Client(base_url=base, headers=headers, timeout=60) as client,
        ):
            client.post("/api/v1/runs/bulk/", json={"runs": bodies}).raise_for_status()
            deadline = time.monotonic() + 360
            fit = None
            while time.monotonic() < deadline:  # the bootstrap has started: the point fit is published
                fits = client.get("/api/v1/fits/", params={"family": "k", "law": "precision"}).json()["results"]
                if fits and fits[0]["status"] == "running" and fits[0]["started_at"]:
                    fit = fits[0]
                    time.sleep(5)  # well inside the point fit or the first chunks
                    break
                time.sleep(0.5)
            assert fit is not None, "the precision fit never started"
            os.killpg(first.pid, signal.SIGKILL)
            killed = time.monotonic()
            first.wait(timeout=10)
            second = worker(stack.env)
            taken_over = None
            while time.monotonic() < deadline:
                current = client.get(f"/api/v1/fits/{fit['id']}/").json()
                if taken_over is None and stack_attempt(stack, fit["id"]) >= 2:
                    taken_over = time.monotonic() - killed
                if current["status"] != "running":
                    break
                time.sleep(1)
            done = time.monotonic() - killed
            print(
                f"fit {fit['id']} ({args.draws} draws in chunks of 25): killed -> taken over "
                f"{taken_over if taken_over is None else round(taken_over)} s, killed -> {current['status']} "
                f"{done:.0f} s; attempts {stack_attempt(stack, fit['id'])}"
            )
    finally:
        for process in (second, first, beat):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)


def stack_attempt(stack: Stack, fit_id: int) -> int:
    out = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            stack.dbname,
            "-tAc",
            f"SELECT attempt FROM planner_fit WHERE id = {int(fit_id)}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(out or 0)


if __name__ == "__main__":
    main()
