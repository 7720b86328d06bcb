"""Load test: 32 concurrent clients against gunicorn on PostgreSQL with a Celery worker on Redis.

    .venv/bin/python bench/load.py [--clients 32] [--seconds 60]

Setup: a fresh database, gunicorn (4 processes) and one worker (2 processes) on 127.0.0.1, a team with a
fitted family (Kumar's synthetic sweep). Then each client loops, for --seconds, over a weighted mix:
post a run (35%), add an evaluation (15%), list a filtered page (25%), read the current fit (10%), ask for a
plan (15%). Prints throughput, p50/p99 per endpoint and the error count (target: zero errors).
Loopback only; the loop is bounded in time and every request has a timeout.
"""

import argparse
import asyncio
import random
import time
from collections import defaultdict

import httpx
from refit import payloads  # the same synthetic sweep
from stack import Stack, machine_line, percentile

MIX = [("post_run", 35), ("post_evaluation", 15), ("list_runs", 25), ("current_fit", 10), ("plan", 15)]


async def client_loop(
    client: httpx.AsyncClient, deadline: float, seed: int, results: dict[str, list[float]], errors: dict[str, int]
) -> None:
    rng = random.Random(seed)
    names, weights = zip(*MIX, strict=True)
    run_ids: list[int] = []
    counter = 0
    while time.monotonic() < deadline:
        name = rng.choices(names, weights)[0]
        if name == "post_evaluation" and not run_ids:
            name = "post_run"
        counter += 1
        started = time.perf_counter()
        try:
            if name == "post_run":
                n = rng.choice([30, 60, 110, 220]) * 10**6
                response = await client.post(
                    "/api/v1/runs/",
                    json={
                        "external_id": f"load-{seed}-{counter}",
                        "family": "load",
                        "n_params": n,
                        "n_tokens": n * rng.choice([20, 50, 100]),
                        "weight_bits": rng.choice([4, 6, 8, 16]),
                        "final_loss": 3.0 + rng.random(),
                    },
                )
                if response.status_code == 201:
                    run_ids.append(response.json()["id"])
            elif name == "post_evaluation":
                run_id = rng.choice(run_ids)
                response = await client.post(
                    f"/api/v1/runs/{run_id}/evaluations/", json={"post_train_bits": 3, "loss": 4.5}
                )
            elif name == "list_runs":
                response = await client.get("/api/v1/runs/", params={"family": "bench", "page_size": 100})
            elif name == "current_fit":
                response = await client.get("/api/v1/fits/current/", params={"family": "bench", "law": "precision"})
            else:
                response = await client.post(
                    "/api/v1/plans/",
                    json={
                        "family": "bench",
                        "budget": {"flops": rng.choice([1e20, 1e21, 1e22])},
                        "constraints": {"post_train_bits": 4},
                    },
                )
            ok = response.status_code < 400
        except httpx.HTTPError:
            ok = False
        results[name].append((time.perf_counter() - started) * 1000)
        if not ok:
            errors[name] += 1


async def load(
    base: str, key: str, clients: int, seconds: float
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    results: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(client, deadline, i, results, errors) for i in range(clients)))
        elapsed = time.monotonic() - started
    return results, errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bitscale_load_bench")
    parser.add_argument(
        "--broker-url",
        default="private",
        help="a Redis URL to use (its database is used as is); default: a private redis-server",
    )
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()

    # The load test measures the server, not the limiter.
    stack = Stack(args.database_url, args.broker_url, API_RATE_LIMIT="")
    key = stack.team_key("load")
    with stack.serving(port=args.port, web_processes=4, worker_processes=2) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            client.post("/api/v1/runs/bulk/", json={"runs": payloads(500)}).raise_for_status()
            print("waiting for the precision fit of the setup sweep…", flush=True)
            for _ in range(600):
                response = client.get("/api/v1/fits/current/", params={"family": "bench", "law": "precision"})
                if response.status_code == 200:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit("no fit after 300 s")
        print(f"loading: {args.clients} clients for {args.seconds:.0f} s…", flush=True)
        results, errors, elapsed = asyncio.run(load(base, key, args.clients, args.seconds))

    total = sum(len(v) for v in results.values())
    print(f"\n{machine_line()}; the load generator runs on the same machine")
    print(
        f"{args.clients} clients, {elapsed:.0f} s: {total} requests, {total / elapsed:.0f} req/s, "
        f"errors {sum(errors.values())}"
    )
    print(f"{'endpoint':<16} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, _ in MIX:
        values = results.get(name, [])
        print(
            f"{name:<16} {len(values):>7} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f} "
            f"{errors.get(name, 0):>7}"
        )


if __name__ == "__main__":
    main()
