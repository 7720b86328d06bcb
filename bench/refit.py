"""Refit benchmark: from the last of 500 runs posted to a succeeded `precision` fit (200 draws) in the API.

    .venv/bin/python bench/refit.py [--workers 1,2] [--database-url ...] [--broker-url ...]

For each worker count: a fresh PostgreSQL database, gunicorn on 127.0.0.1, one `celery worker` with that many
processes on Redis, 500 runs (Kumar's synthetic sweep, with PTQ evaluations) posted one at a time, then the
API is polled until the current `precision` fit covers all 500 runs. Prints the time and how it divides:
debounce (last post -> snapshot), queue (snapshot -> claimed), compute (claimed -> published).
Target: under 20 s with one worker on a 2-core machine. Loopback only; every loop is bounded.
"""

import argparse
import sys
import time
from datetime import UTC, datetime

import httpx
from stack import ROOT, Stack, machine_line

sys.path.insert(0, str(ROOT))  # fits.laws, for the synthetic sweep


def payloads(count: int) -> list[dict[str, object]]:
    from fits.laws import kumar_synthetic

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
    stack = Stack(args.database_url, args.broker_url)
    key = stack.team_key("bench")
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
    with (
        stack.serving(port=args.port, web_processes=2, worker_processes=workers) as base,
        httpx.Client(base_url=base, headers=headers, timeout=30) as client,
    ):
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
    parser.add_argument(
        "--broker-url",
        default="private",
        help="a Redis URL to use (its database is used as is); default: a private redis-server",
    )
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    bodies = payloads(500)
    lines = [run_once(int(w), args, bodies) for w in args.workers.split(",")]
    print(f"\n{machine_line()}")
    print("settings: FIT_DEBOUNCE_SECONDS=5 (default), 200 bootstrap draws in chunks of 25, PostgreSQL, Redis")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
