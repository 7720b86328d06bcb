"""Bitscale's server CPU per logged run: the web processes plus their PostgreSQL backends, read from /proc.

    .venv/bin/python bench/server_cpu.py [--runs 200] [--training-runs 40] [--native-runs 400] [--profile DIR]

Starts gunicorn as ../shared/tools/server_cpu.py does (production settings, 4 workers, a fresh PostgreSQL
database, a private redis-server as the broker with no worker consuming it), drives it with 8 client processes
and prints, per workload, the CPU per run of the server's process tree and of its database backends:

- simplest: MLflow's client, create + one log_batch (5 params, 3 metrics) + terminate (4 requests);
- training: MLflow's client, create + params + 20 log_batch of 30 points + final losses + terminate (24 requests);
- native: one `POST /api/v1/runs/` per run (a run with 3 evaluations), with httpx.

The side-by-side figure against MLflow's own server is ../shared/tools/server_cpu.py (`make bench-mlflow-cpu`);
this script adds the native post and `--profile DIR`, which records each worker with py-spy (CPU only, `--gil`)
while the workloads run, as collapsed stacks in DIR (needs `pip install py-spy`).
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
CLIENTS = 8


def psql(sql: str) -> str:
    command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atqc", sql]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def proc_cpu(pid: int, children_too: bool = True) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st + ((cut + cst) if children_too else 0)) / TICK


def tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack += kids.get(current, [])
    return found


def snapshot(root: int, database: str) -> tuple[dict[int, float], dict[int, float]]:
    server = {pid: proc_cpu(pid) for pid in tree(root)}
    backends = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'").split()
    return server, {int(pid): proc_cpu(int(pid), False) for pid in backends}


def delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def mlflow_client(job: tuple[str, str, str, int, int]) -> int:
    """The shared tool's client: the same calls, so the figures compare."""
    uri, token, workload, runs, seed = job
    os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_TOKEN=token, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        found = client.get_experiment_by_name("cpu-bench")
        if found is None:
            try:
                experiment_id = client.create_experiment("cpu-bench")
            except Exception:  # another client created it first
                experiment_id = client.get_experiment_by_name("cpu-bench").experiment_id  # type: ignore[union-attr]
        else:
            experiment_id = found.experiment_id
        errors = 0
        for i in range(runs):
            try:
                run = client.create_run(experiment_id, run_name=f"s{seed}-{i}")
                run_id, ts = run.info.run_id, int(time.time() * 1000)
                params = [
                    Param("n_params", str(30_000_000 * (1 + i % 4))),
                    Param("n_tokens", str(3_000_000_000)),
                    Param("weight_bits", "8"),
                    Param("activation_bits", "8"),
                    Param("kv_bits", "16"),
                ]
                if workload == "simplest":
                    metrics = [
                        Metric("final_loss", 3.2, ts, 0),
                        Metric("ptq_loss/4", 3.3, ts, 0),
                        Metric("ptq_loss/8", 3.21, ts, 0),
                    ]
                    client.log_batch(run_id, metrics=metrics, params=params)
                else:
                    client.log_batch(run_id, params=params)
                    for step in range(0, 200, 10):
                        points = [
                            Metric(key, 3.0 + 1.0 / (1 + step + j), ts, step + j)
                            for j in range(10)
                            for key in ("loss", "lr", "grad_norm")
                        ]
                        client.log_batch(run_id, metrics=points)
                    final = [Metric("final_loss", 3.1, ts, 200), Metric("ptq_loss/4", 3.2, ts, 200)]
                    client.log_batch(run_id, metrics=final)
                client.set_terminated(run_id)
            except Exception as exc:
                errors += 1
                _note_error(exc)
    return errors


def _note_error(exc: Exception) -> None:
    """Append the failure to BENCH_ERROR_LOG when set (the clients' own output is silenced)."""
    path = os.environ.get("BENCH_ERROR_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{type(exc).__name__}: {exc}\n")


def native_client(job: tuple[str, str, str, int, int]) -> int:
    import httpx

    uri, token, _, runs, seed = job
    errors = 0
    with httpx.Client(base_url=uri, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(runs):
            body = {
                "external_id": f"native-{seed}-{i}-{uuid.uuid4().hex[:8]}",
                "family": "cpu-native",
                "n_params": 30_000_000 * (1 + i % 4),
                "n_tokens": 3_000_000_000,
                "weight_bits": 8,
                "activation_bits": 8,
                "final_loss": 3.2,
                "evaluations": [{"post_train_bits": b, "loss": 3.3 + b / 100} for b in (3, 4, 6)],
            }
            if client.post("/api/v1/runs/", json=body).status_code != 201:
                errors += 1
    return errors


def measure(name: str, client: Any, root: int, database: str, uri: str, token: str, runs: int) -> float:
    per = runs // CLIENTS
    with ProcessPoolExecutor(CLIENTS) as pool:  # warm-up: imports, the experiment, each worker's connection
        list(pool.map(client, [(uri, token, name, 1, 1000 + k) for k in range(CLIENTS)]))
    before = snapshot(root, database)
    started = time.time()
    with ProcessPoolExecutor(CLIENTS) as pool:
        errors = sum(pool.map(client, [(uri, token, name, per, k) for k in range(CLIENTS)]))
    wall = time.time() - started
    after = snapshot(root, database)
    n = per * CLIENTS
    server, postgres = delta(before[0], after[0]) * 1000 / n, delta(before[1], after[1]) * 1000 / n
    print(
        f"{name:9s} runs {n:4d} errors {errors:3d} wall {wall:6.1f}s  server {server:6.1f} ms/run  "
        f"postgres {postgres:5.1f} ms/run  total {server + postgres:6.1f} ms/run",
        flush=True,
    )
    return server + postgres


def wait_up(url: str, timeout: float = 120) -> None:
    import urllib.request

    started = time.time()
    while time.time() - started < timeout:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception as exc:
            if hasattr(exc, "code"):
                return
            time.sleep(1)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--training-runs", type=int, default=40)
    parser.add_argument("--native-runs", type=int, default=400)
    parser.add_argument("--workloads", default="simplest,training,native")
    parser.add_argument("--port", type=int, default=8471)
    parser.add_argument("--database", default="cpu_bitscale_bench")
    parser.add_argument("--profile", type=Path, help="record each worker with py-spy into this folder")
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    spies: list[subprocess.Popen[bytes]] = []
    redis_port = args.port + 2
    try:
        psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        psql(f"CREATE DATABASE {args.database}")
        redis = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        procs.append(subprocess.Popen(redis, stdout=subprocess.DEVNULL, start_new_session=True))
        env = dict(
            os.environ,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.database}",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
            DJANGO_SETTINGS_MODULE="config.settings.production",
            DJANGO_SECRET_KEY="cpu-bench-" + uuid.uuid4().hex * 2,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SECURE_SSL_REDIRECT="false",
            DJANGO_LOG_LEVEL="WARNING",
            API_RATE_LIMIT="",
            DJANGO_HTTPS="false",
        )

        def manage(*command: str) -> str:
            done = subprocess.run([PY, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
            return done.stdout.decode()

        manage("migrate", "--noinput")
        manage("create_team", "cpu")
        token = manage("create_api_key", "cpu").strip().splitlines()[-1]
        command = [PY, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{args.port}", "-w", "4"]
        command += ["--access-logfile", "/dev/null", "--log-level", "warning"]
        server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
        procs.append(server)
        uri = f"http://127.0.0.1:{args.port}"
        wait_up(f"{uri}/healthz")
        time.sleep(3)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = Path(os.environ.get("PY_SPY") or Path(PY).with_name("py-spy"))  # PY_SPY: one installed elsewhere
            for pid in tree(server.pid)[1:]:
                out = args.profile / f"worker-{pid}.txt"
                spy_command = [str(spy), "record", "--pid", str(pid), "--gil", "--rate", "200", "--format", "raw"]
                spies.append(subprocess.Popen([*spy_command, "--output", str(out), "--nonblocking"]))
        clients = {"simplest": mlflow_client, "training": mlflow_client, "native": native_client}
        counts = {"simplest": args.runs, "training": args.training_runs, "native": args.native_runs}
        for workload in args.workloads.split(","):
            measure(workload, clients[workload], server.pid, args.database, uri, token, counts[workload])
    finally:
        for spy_process in spies:
            spy_process.send_signal(signal.SIGINT)
            spy_process.wait(timeout=30)
        for process in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
