"""Refit benchmark: from the last of 500 runs posted to a succeeded `precision` fit (200 draws) in the API.

    .venv/bin/python bench/refit.py [--workers 1,2] [--database-url ...] [--broker-url ...]

For each worker count: a fresh PostgreSQL database, gunicorn on 127.0.0.1, one `celery worker` with that many
processes on Redis, 500 runs (Kumar's synthetic sweep, with PTQ evaluations) posted one at a time, then the
API is polled until the current `precision` fit covers all 500 runs. Prints the time and how it divides:
debounce (last post -> snapshot), queue (snapshot -> claimed), compute (claimed -> published).
Target (issue 5): under 20 s with one worker on a 2-core machine. Loopback only; every loop is bounded.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable


def payloads(count: int) -> list[dict[str, object]]:
    from planner.laws import kumar_synthetic

    noisy, _ = kumar_synthetic(seed=11)
    rng_order = sorted(range(noisy.n_runs), key=lambda i: (i * 7919) % noisy.n_runs)[:count]
    evaluations: dict[int, list[dict[str, float]]] = {}
    for run, bits, loss in zip(
        noisy.eval_run.tolist(), noisy.eval_post_bits.tolist(), noisy.eval_loss.tolist(), strict=True
    ):
        evaluations.setdefault(run, []).append({"post_train_bits": bits, "loss": loss})
    return [
        {
            "external_id": f"bench-{i}",
            "family": "bench",
            "n_params": round(float(noisy.n_params[i])),
            "n_tokens": round(float(noisy.n_tokens[i])),
            "weight_bits": float(noisy.weight_bits[i]),
            "activation_bits": float(noisy.activation_bits[i]),
            "kv_bits": float(noisy.kv_bits[i]),
            "final_loss": float(noisy.final_loss[i]),
            **({"evaluations": evaluations[i]} if i in evaluations else {}),
        }
        for i in rng_order
    ]


def run_once(workers: int, args: argparse.Namespace, bodies: list[dict[str, object]]) -> str:
    name = args.database_url.rsplit("/", 1)[1]
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    subprocess.run(["redis-cli", "-u", args.broker_url, "flushdb"], check=True, capture_output=True)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    manage = [PY, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*manage, "create_team", "bench"], cwd=ROOT, env=env, check=True, capture_output=True)
    key = (
        subprocess.run(
            [*manage, "create_api_key", "bench"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    web = subprocess.Popen(
        [PY, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{args.port}", "-w", "2", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "celery,fits",
            f"--concurrency={workers}",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", headers=headers, timeout=30) as client:
            for _ in range(100):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            started = time.perf_counter()
            for body in bodies:
                client.post("/api/v1/runs/", json=body).raise_for_status()
            posted_at = datetime.now(UTC)
            last_post = time.perf_counter()
            fit = None
            while time.perf_counter() - last_post < 300:
                response = client.get("/api/v1/fits/current/", params={"family": "bench", "law": "precision"})
                if response.status_code == 200 and response.json()["n_runs"] == len(bodies):
                    fit = response.json()
                    break
                time.sleep(0.05)
            visible = time.perf_counter() - last_post
    finally:
        worker.terminate()
        web.terminate()
        worker.wait(timeout=60)
        web.wait(timeout=30)
    if fit is None:
        return f"{workers} worker process(es): no fit within 300 s"
    created = datetime.fromisoformat(fit["created_at"])
    began = datetime.fromisoformat(fit["started_at"])
    finished = datetime.fromisoformat(fit["finished_at"])
    return (
        f"{workers} worker process(es): posting 500 runs took {last_post - started:.1f} s; last post -> fit visible "
        f"{visible:.1f} s = debounce {(created - posted_at).total_seconds():.1f} s + queue "
        f"{(began - created).total_seconds():.1f} s + compute {(finished - began).total_seconds():.1f} s "
        f"(+ polling); version {fit['version']}, {fit['n_draws']} draws"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_refit_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    bodies = payloads(500)
    lines = [run_once(int(w), args, bodies) for w in args.workers.split(",")]
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d}")
    print("settings: FIT_DEBOUNCE_SECONDS=5 (default), 200 bootstrap draws in chunks of 25, PostgreSQL, Redis")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
