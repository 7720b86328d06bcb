"""Ingest benchmark: bulk and single-run posts, and filtered list pages, against gunicorn.

    .venv/bin/python bench/ingest.py [--database-url postgres://postgres@127.0.0.1:5432/bitscale_bench]

Creates a fresh database (PostgreSQL by default; the URL's database is dropped and recreated), starts
gunicorn on 127.0.0.1 with production-like settings, then measures:
  1. 10,000 runs with 3 evaluations each through POST /api/v1/runs/bulk/ (1,000 per request): runs/s;
  2. 2,000 single-run posts from 8 concurrent clients: p50/p99 latency and runs/s;
  3. a filtered page of 100 runs out of 100,000 (90,000 more runs are bulk-loaded first): p50/p99.
Targets (2-core machine): bulk >= 2,000 runs/s; single p50 <= 15 ms, p99 <= 60 ms; list p50 <= 50 ms.
Only loopback traffic; every loop is bounded.
"""

import argparse
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
from stack import Stack, machine_line, percentile


def run_payload(i: int, prefix: str) -> dict[str, object]:
    n = 10_000_000 * (1 + i % 40)
    return {
        "external_id": f"{prefix}-{i}",
        "family": f"fam-{i % 10}",
        "n_params": n,
        "n_tokens": 20 * n * (1 + i % 5),
        "weight_bits": [16, 8, 6, 4][i % 4],
        "activation_bits": 16,
        "kv_bits": 16,
        "final_loss": 2.5 + (i % 97) / 100,
        "evaluations": [{"post_train_bits": b, "loss": 3.5 - b / 10} for b in (2, 3, 3.5)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_bench")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--list-runs", type=int, default=100_000, help="runs in the database for the list test")
    args = parser.parse_args()

    stack = Stack(args.database_url, os.environ.get("CELERY_BROKER_URL", "filesystem://"))
    key = stack.team_key("bench")
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
    analyze = partial(stack.psql, "VACUUM ANALYZE")
    with (
        stack.serving(port=args.port, web_processes=args.workers) as base,
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
    ):
        results = measure(client, base, headers, args.list_runs, analyze)

    print(f"\n{machine_line()}")
    print(f"database: {args.database_url.split('://')[0]}; gunicorn workers: {args.workers}")
    for line in results:
        print(line)


def measure(
    client: httpx.Client, base: str, headers: dict[str, str], list_runs: int, analyze: Callable[[], object] | None
) -> list[str]:
    out = []
    # 1. Bulk: 10 requests of 1,000 runs, 3 evaluations each.
    bodies = [{"runs": [run_payload(b * 1000 + i, "bulk") for i in range(1000)]} for b in range(10)]
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/runs/bulk/", json=body)
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    out.append(
        f"bulk: 10,000 runs (+30,000 evaluations) in {elapsed:.2f} s = {10_000 / elapsed:,.0f} runs/s (target >= 2,000)"
    )

    # 2. Single posts: 2,000 from 8 concurrent clients.
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    local = threading.local()

    def post(i: int) -> None:
        nonlocal errors
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, headers=headers, timeout=30)
        body = run_payload(100_000 + i, "single")
        t0 = time.perf_counter()
        response = local.client.post("/api/v1/runs/", json=body)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt * 1000)
            errors += response.status_code != 201

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, range(2000)))
    elapsed = time.perf_counter() - started
    out.append(
        f"single: 2,000 posts, 8 clients, {2000 / elapsed:,.0f} runs/s; p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms, errors {errors} (targets p50 <= 15, p99 <= 60)"
    )

    # 3. Filtered list page of 100 among list_runs runs.
    have = 12_000
    started = time.perf_counter()
    batch = 0
    while have < list_runs:
        count = min(1000, list_runs - have)
        body = {"runs": [run_payload(200_000 + batch * 1000 + i, "fill") for i in range(count)]}
        client.post("/api/v1/runs/bulk/", json=body).raise_for_status()
        have, batch = have + count, batch + 1
        if batch % 10 == 0:
            print(f"  loaded {have:,} runs…", flush=True)
    fill = time.perf_counter() - started
    if analyze is not None:
        analyze()  # what autovacuum does after a bulk load; without it the planner guesses from an empty table
    queries = [
        "/api/v1/runs/?family=fam-3&page_size=100",
        "/api/v1/runs/?weight_bits=4&n_params__gte=100000000&page_size=100",
        "/api/v1/runs/?family=fam-7&ordering=-final_loss&page_size=100",
    ]
    timings = []
    for i in range(150):
        t0 = time.perf_counter()
        response = client.get(queries[i % len(queries)])
        timings.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        if len(response.json()["results"]) != 100:
            raise SystemExit(f"expected a full page for {queries[i % len(queries)]}")
    out.append(
        f"list: page of 100 among {have:,} runs (filtered by family / bits+size / family+ordering), 150 requests: "
        f"p50 {percentile(timings, 50):.1f} ms, p99 {percentile(timings, 99):.1f} ms (target p50 <= 50); "
        f"filling {have - 12_000:,} runs took {fill:.1f} s"
    )
    return out


if __name__ == "__main__":
    main()
