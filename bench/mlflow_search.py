"""MLflow runs/search over many runs, in-process on PostgreSQL (issue 26: a filtered search over 20,000 runs).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bitscale_search .venv/bin/python bench/mlflow_search.py \
        [--runs 20000] [--repeat 10]

The URL's database is dropped and recreated. Stores `--runs` MLflow runs in one experiment (params lr and
n_params, tags group and owner, metrics loss and final_loss; a tenth linked to a Bitscale run, a tenth with a
mapping error), then times `POST /api/2.0/mlflow/runs/search` through Django's test client with production
settings (no sockets): p50 and max wall time over `--repeat` calls per filter, and how many runs each found.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILTERS = [
    ("no filter (a page of 1000)", "", []),
    ("params.lr = '0.001'", "params.lr = '0.001'", []),
    ("metrics.loss < 2.5", "metrics.loss < 2.5", []),
    ("tags.group = 'g7' and metrics.loss < 3", "tags.group = 'g7' and metrics.loss < 3", []),
    ("tags.`bitscale.error` != ''", "tags.`bitscale.error` != ''", []),
    ("attributes.run_name LIKE 'run-1999%'", "attributes.run_name LIKE 'run-1999%'", []),
    ("params.lr = '0.001', order_by metrics.loss", "params.lr = '0.001'", ["metrics.loss ASC"]),
    ("attributes.run_name ILIKE 'RUN-1999%' (in Python)", "attributes.run_name ILIKE 'RUN-1999%'", []),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bitscale_search")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="testserver",
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
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    from mlflow_compat.models import Experiment, MlflowRun
    from runs.models import Run
    from runs.services import api_key_create, team_get_or_create

    team, _ = team_get_or_create(slug="search")
    _, secret = api_key_create(team=team)
    experiment = Experiment.objects.create(team=team, name="sweep")
    linked = Run.objects.bulk_create(
        Run(team=team, external_id=f"mlflow-{i}", family="sweep", n_params=10**8, n_tokens=10**9, final_loss=3.0)
        for i in range(args.runs // 10)
    )
    now = 1_700_000_000_000
    runs = []
    for i in range(args.runs):
        loss = 2.0 + (i % 200) / 100
        runs.append(
            MlflowRun(
                run_id=uuid.uuid4().hex,
                team=team,
                experiment=experiment,
                run_name=f"run-{i}",
                status="FINISHED",
                start_time=now + i,
                end_time=now + i + 1000,
                params={"lr": ["0.001", "0.0003", "0.003"][i % 3], "n_params": str(10**8 + i)},
                tags={"group": f"g{i % 10}", "owner": "ada", "mlflow.runName": f"run-{i}"},
                metrics={"loss": [loss, now, 100], "final_loss": [loss - 0.1, now, 200]},
                bitscale_run=linked[i // 10] if i % 10 == 0 else None,
                mapping_error="no n_params or n_tokens" if i % 10 == 5 else "",
            )
        )
    MlflowRun.objects.bulk_create(runs, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    print(f"{args.runs} MLflow runs in one experiment; {args.repeat} searches per filter (max_results 1000)")
    for label, text, order_by in FILTERS:
        body = {"experiment_ids": [str(experiment.pk)], "filter": text, "order_by": order_by, "max_results": 1000}
        walls = []
        for _ in range(args.repeat + 1):
            started = time.perf_counter()
            response = client.post("/api/2.0/mlflow/runs/search", body, content_type="application/json")
            walls.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
        found = len(response.json().get("runs", []))
        walls = walls[1:]
        print(f"  {label:52s} found {found:5d}  p50 {statistics.median(walls):7.1f} ms  max {max(walls):7.1f} ms")
    connection.close()


if __name__ == "__main__":
    main()
