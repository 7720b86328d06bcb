"""MLflow-compatible tracking benchmark: 8 concurrent MLflow clients against gunicorn on PostgreSQL.

    .venv/bin/python bench/mlflow_tracking.py [--runs-per-client 5] [--mlflow-venv PATH]

Creates a fresh database, starts gunicorn (4 processes, production settings, rate limit off) and runs two
workloads, each from 8 client processes using MLflow's own client (mlflow-skinny) and nothing else:
  1. "training": each client creates a run, logs its params, 200 steps of 3 metrics through log_batch every
     10 steps (20 batches of 30 points), and ends the run (23 client calls, 24 HTTP requests per run);
  2. "simplest": create, one log_batch (params and 3 metrics), terminate (3 calls, 4 HTTP requests per run:
     MLflow's `set_terminated` reads the run to print its link before it updates it);
and, for scale, "native": the same runs posted once each through Bitscale's own POST /api/v1/runs/.
It prints runs/s, client calls/s and p50/p99 per call, each call timed around the client's method (its own work
and its HTTP requests included, as a training script sees it). The clock starts when all 8
clients have imported their client and made a first request (a start barrier), so the figures are the servers'
steady state, not the clients' start-up.

With --mlflow-venv PATH (a virtualenv with `mlflow` and `psycopg2` installed) it also starts MLflow's own
tracking server (`mlflow server`, 4 workers) on a second fresh PostgreSQL database, runs the same workloads
against it, and prints Bitscale's throughput over MLflow's.
Only loopback traffic; every loop is bounded.
"""

import argparse
import multiprocessing
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from stack import PY, Stack, machine_line, percentile

CLIENTS = 8
STEPS, LOG_EVERY = 200, 10
BARRIER_TIMEOUT_S = 120

# Set in each client process by the pool's initializer: the clients start their timed loops together, once each
# has imported its client and made a first request, so the figures are the servers' steady state and not the
# clients' start-up (importing MLflow's client costs about a second of CPU per process).
_start_barrier: Any = None


def _init_client(barrier: Any) -> None:
    global _start_barrier
    _start_barrier = barrier


Timings = tuple[list[float], float, float, float]  # latencies (ms), client CPU (ms), start and end (monotonic s)


def _client_runs(url: str, token: str, workload: str, runs: int, seed: int) -> Timings:
    """One client process: `runs` runs of the workload, after a warm-up request and the start barrier."""
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # an error counts, it is not hidden by retries
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    latencies: list[float] = []

    def timed(call: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        result = call(*args, **kwargs)
        latencies.append((time.perf_counter() - t0) * 1000)
        return result

    experiment = client.get_experiment_by_name("bench")  # the warm-up request, not timed
    experiment_id = experiment.experiment_id if experiment else "0"
    _start_barrier.wait(BARRIER_TIMEOUT_S)
    started, cpu_start = time.monotonic(), time.process_time()
    for r in range(runs):
        n = 10_000_000 * (1 + (seed * runs + r) % 40)
        params = [
            Param("n_params", str(n)),
            Param("n_tokens", str(20 * n)),
            Param("weight_bits", str([16, 8, 4][r % 3])),
            Param("lr", "3e-4"),
        ]
        run = timed(client.create_run, experiment_id, run_name=f"c{seed}-r{r}")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        if workload == "training":
            timed(client.log_batch, run_id, params=params)
            for start in range(0, STEPS, LOG_EVERY):
                metrics = [
                    Metric(key, 6.0 - step / 100 + offset, now + step, step)
                    for step in range(start, start + LOG_EVERY)
                    for key, offset in (("train_loss", 0.0), ("val_loss", 0.1), ("grad_norm", -4.0))
                ]
                timed(client.log_batch, run_id, metrics=metrics)
            timed(client.log_batch, run_id, metrics=[Metric("final_loss", 4.0, now + STEPS, STEPS)])
        else:
            metrics = [Metric(k, 4.0, now, 0) for k in ("final_loss", "train_loss", "grad_norm")]
            timed(client.log_batch, run_id, metrics=metrics, params=params)
        timed(client.set_terminated, run_id, "FINISHED")
    return latencies, (time.process_time() - cpu_start) * 1000, started, time.monotonic()


def _native_runs(url: str, token: str, workload: str, runs: int, seed: int) -> Timings:
    """The reference: the same runs posted once each through Bitscale's own POST /api/v1/runs/ (final state)."""
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        client.get("/api/v1/runs/", params={"limit": 1}).raise_for_status()  # the warm-up request, not timed
        _start_barrier.wait(BARRIER_TIMEOUT_S)
        started, cpu_start = time.monotonic(), time.process_time()
        for r in range(runs):
            n = 10_000_000 * (1 + (seed * runs + r) % 40)
            body = {"external_id": f"native-{seed}-{r}", "family": "bench-native", "n_params": n}
            body.update({"n_tokens": 20 * n, "weight_bits": [16, 8, 4][r % 3], "final_loss": 4.0})
            t0 = time.perf_counter()
            client.post("/api/v1/runs/", json=body).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, (time.process_time() - cpu_start) * 1000, started, time.monotonic()


def measure(url: str, token: str, workload: str, runs_per_client: int) -> dict[str, float]:
    """Runs/s and latencies from the start barrier to the last client's end (clients' start-up excluded)."""
    barrier = multiprocessing.get_context("fork").Barrier(CLIENTS)
    with ProcessPoolExecutor(max_workers=CLIENTS, initializer=_init_client, initargs=(barrier,)) as pool:
        client = _native_runs if workload == "native" else _client_runs
        futures = [pool.submit(client, url, token, workload, runs_per_client, seed) for seed in range(CLIENTS)]
        results = [future.result() for future in futures]
    latencies = [ms for timings, *_ in results for ms in timings]
    client_cpu_ms = sum(cpu for _, cpu, _, _ in results)
    elapsed = max(end for *_, end in results) - min(start for _, _, start, _ in results)
    runs = CLIENTS * runs_per_client
    return {
        "runs": runs,
        "seconds": elapsed,
        "runs_per_s": runs / elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "client_cpu_ms": client_cpu_ms / len(latencies),
    }


def line(name: str, workload: str, figures: dict[str, float]) -> str:
    return (
        f"{name} {workload}: {figures['runs']:.0f} runs in {figures['seconds']:.1f} s = {figures['runs_per_s']:.1f} "
        f"runs/s, {figures['requests_per_s']:.0f} calls/s; per call p50 {figures['p50']:.1f} ms, "
        f"p99 {figures['p99']:.1f} ms; client CPU {figures['client_cpu_ms']:.1f} ms per call"
    )


def prepare(url: str, token: str) -> None:
    """The experiment the clients log to, created once (8 clients creating it at once would race)."""
    os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"] = url, token
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if client.get_experiment_by_name("bench") is None:
        client.create_experiment("bench")


def _in_child(function: Any, *args: Any) -> Any:
    """Run in a child process: the parent never opens MLflow's HTTP sessions, which forked clients would share."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def mlflow_server(venv: Path, database_url: str, port: int, artifacts: Path) -> subprocess.Popen[bytes]:
    dbname = database_url.rsplit("/", 1)[1]
    for sql in (f"DROP DATABASE IF EXISTS {dbname}", f"CREATE DATABASE {dbname}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True)
    backend = database_url.replace("postgres://", "postgresql+psycopg2://", 1)
    process = subprocess.Popen(
        [
            str(venv / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--default-artifact-root",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "4",
        ]
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("MLflow's server did not start")


def null_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    """bench/mlflow_null_server.py under gunicorn, as many processes as Bitscale's."""
    bench = Path(__file__).resolve().parent
    command = [PY, "-m", "gunicorn", "--chdir", str(bench), "mlflow_null_server:app", "-w", str(workers)]
    process = subprocess.Popen([*command, "-b", f"127.0.0.1:{port}", "--log-level", "warning"])
    for _ in range(150):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("The null server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_bench_mlflow")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--runs-per-client", type=int, default=5, help="training runs per client")
    parser.add_argument("--simple-runs-per-client", type=int, default=25, help="simplest-workload runs per client")
    parser.add_argument("--mlflow-venv", type=Path, help="a virtualenv with mlflow and psycopg2, for the comparison")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also run the MLflow workloads against bench/mlflow_null_server.py (fixed answers, nothing stored)",
    )
    args = parser.parse_args()

    workloads = {"training": args.runs_per_client, "simplest": args.simple_runs_per_client}
    stack = Stack(args.database_url, os.environ.get("CELERY_BROKER_URL", "filesystem://"), API_RATE_LIMIT="")
    token = stack.team_key("bench")
    results: dict[tuple[str, str], dict[str, float]] = {}
    with stack.serving(port=args.port, web_processes=args.workers) as base:
        _in_child(prepare, base, token)
        for workload, runs in workloads.items():
            results[("bitscale", workload)] = measure(base, token, workload, runs)
        # The same load through Bitscale's own API, measured at the same time on the same machine, for scale.
        results[("bitscale", "native")] = measure(base, token, "native", args.simple_runs_per_client)
    if args.mlflow_venv is not None:
        port = args.port + 1
        process = mlflow_server(args.mlflow_venv, args.database_url + "_ref", port, Path("/tmp/bench-mlflow-artifacts"))
        try:
            url = f"http://127.0.0.1:{port}"
            _in_child(prepare, url, "unused")
            for workload, runs in workloads.items():
                results[("mlflow", workload)] = measure(url, "unused", workload, runs)
        finally:
            process.terminate()
            process.wait(timeout=60)

    if args.ceiling:
        port = args.port + 2
        process = null_server(port, args.workers)
        try:
            for workload, runs in workloads.items():
                results[("ceiling", workload)] = measure(f"http://127.0.0.1:{port}", "unused", workload, runs)
        finally:
            process.terminate()
            process.wait(timeout=60)

    print(f"\n{machine_line()}")
    print(
        f"database: {args.database_url.split('://')[0]}; gunicorn workers: {args.workers}; {CLIENTS} client processes"
    )
    for (name, workload), figures in results.items():
        print(line(name, workload, figures))
    for workload in workloads:
        if ("mlflow", workload) in results:
            ratio = results[("bitscale", workload)]["runs_per_s"] / results[("mlflow", workload)]["runs_per_s"]
            print(f"{workload}: Bitscale / MLflow throughput = {ratio:.1f}x (target >= 10x)")
            # What 10x leaves the server: the cores' time per run at that rate less the clients' own CPU per run.
            target = 10 * results[("mlflow", workload)]["runs_per_s"]
            figures = results[("bitscale", workload)]
            client_per_run = figures["client_cpu_ms"] * figures["requests_per_s"] / figures["runs_per_s"]
            left = (os.cpu_count() or 1) * 1000 / target - client_per_run
            print(
                f"{workload}: 10x is {target:.0f} runs/s: {(os.cpu_count() or 1) * 1000 / target:.1f} ms of CPU per "
                f"run on {os.cpu_count()} cores, of which the MLflow clients use {client_per_run:.1f} ms; "
                f"{left:.1f} ms would be left for the server and PostgreSQL"
            )
        if ("ceiling", workload) in results and ("mlflow", workload) in results:
            ceiling = results[("ceiling", workload)]["runs_per_s"] / results[("mlflow", workload)]["runs_per_s"]
            print(f"{workload}: ceiling (null server) / MLflow throughput = {ceiling:.1f}x")


if __name__ == "__main__":
    main()
