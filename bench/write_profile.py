"""Profile of the write path in-process on PostgreSQL: a POST /api/v1/runs/, a simplest MLflow run and a bulk post.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale_prof .venv/bin/python bench/write_profile.py \
        [--repeat 200] [--cprofile native|mlflow|bulk] [--sort tottime] [--gc-freeze] [--show-queries]

Uses production settings (the URL's database is dropped and recreated, migrated) and Django's test client: no
sockets, so the figures are the server's own cost per request. Prints, per case, the queries of one request
(counted with an execute wrapper) and the p50 wall time and CPU time per request or run over `--repeat`
repetitions after a warm-up. With --cprofile it prints the 30 most expensive functions (cumulative) of the case.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--cprofile", choices=["native", "mlflow", "bulk"], default=None)
    parser.add_argument("--sort", default="cumulative", help="pstats order for --cprofile (cumulative, tottime)")
    parser.add_argument("--show-queries", action="store_true")
    parser.add_argument("--callees", help="with --cprofile: also print what functions matching this regex call")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after setup, as config/gunicorn.py does")
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bitscale_prof")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_LOG_LEVEL="WARNING",
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "memory://"),
        API_RATE_LIMIT="",
    )
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.CELERY_TASK_ALWAYS_EAGER = False
    call_command("migrate", verbosity=0)
    from runs.services import api_key_create, team_get_or_create

    team, _ = team_get_or_create(slug="prof")
    _, secret = api_key_create(team=team)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    if args.gc_freeze:
        import gc

        gc.collect()
        gc.freeze()

    counter = iter(range(10**9))

    def run_body(i: int) -> dict[str, Any]:
        n = 10_000_000 * (1 + i % 40)
        return {
            "external_id": f"single-{i}",
            "family": f"fam-{i % 10}",
            "n_params": n,
            "n_tokens": 20 * n,
            "weight_bits": [16, 8, 6, 4][i % 4],
            "activation_bits": 16,
            "kv_bits": 16,
            "final_loss": 2.5 + (i % 97) / 100,
            "evaluations": [{"post_train_bits": b, "loss": 3.5 - b / 10} for b in (2, 3, 3.5)],
        }

    def native() -> None:
        response = client.post("/api/v1/runs/", run_body(next(counter)), content_type="application/json")
        assert response.status_code == 201, response.content

    def bulk() -> None:
        start = next(counter) * 1000 + 10**8
        body = {"runs": [dict(run_body(start + i)) for i in range(1000)]}
        response = client.post("/api/v1/runs/bulk/", body, content_type="application/json")
        assert response.status_code == 200, response.content

    def mlflow_call(endpoint: str, body: dict[str, Any]) -> Any:
        response = client.post(f"/api/2.0/mlflow/{endpoint}", body, content_type="application/json")
        assert response.status_code == 200, response.content
        return response.json()

    def mlflow() -> None:
        i = next(counter)
        n = 10_000_000 * (1 + i % 40)
        now = int(time.time() * 1000)
        run = mlflow_call("runs/create", {"experiment_id": "0", "run_name": f"r{i}", "start_time": now})
        run_id = run["run"]["info"]["run_id"]
        params = {"n_params": str(n), "n_tokens": str(20 * n), "weight_bits": str([16, 8, 4][i % 3]), "lr": "3e-4"}
        mlflow_call(
            "runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": k, "value": v} for k, v in params.items()],
                "metrics": [
                    {"key": k, "value": 4.0, "timestamp": now, "step": 0}
                    for k in ("final_loss", "train_loss", "grad_norm")
                ],
            },
        )
        # MLflow's set_terminated reads the run (to print its link), then updates it.
        response = client.get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        assert response.status_code == 200, response.content
        mlflow_call("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now + 1})

    cases = (
        ("native POST /api/v1/runs/", native, args.repeat),
        ("MLflow simplest run (4 requests)", mlflow, args.repeat),
        ("bulk POST /api/v1/runs/bulk/ of 1,000 runs", bulk, max(args.repeat // 50, 3)),
    )
    for label, case, repeat in cases:
        for _ in range(20 if case is not bulk else 1):
            case()
        captured: list[str] = []

        def record(
            execute: Any, sql: str, params: Any, many: bool, context: Any, captured: list[str] = captured
        ) -> Any:
            captured.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            case()
        walls, cpus = [], []
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            case()
            walls.append((time.perf_counter() - w0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
        print(
            f"{label}: {len(captured)} queries; p50 wall {statistics.median(walls):.2f} ms, "
            f"p50 CPU {statistics.median(cpus):.2f} ms (n={repeat})"
        )
        if args.show_queries:
            for sql in captured:
                print("   ", sql[:160])
        if args.cprofile == case.__name__:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(repeat):
                case()
            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats(args.sort)
            stats.print_stats(45)
            if args.callees:
                stats.print_callees(args.callees)
    connection.close()


if __name__ == "__main__":
    main()
