"""Times `POST /api/v1/plans/` end to end in-process: authentication, validation, the fit read, the search with a
200-draw `precision` fit, the plan insert and the JSON rendering.

Run: .venv/bin/python bench/plan_api.py [--repeat 200] [--draws 200]

A throwaway SQLite database (or DATABASE_URL, when set) is migrated; the fit is a real one: `fits.laws.fit_law`
on Kumar's synthetic sweep (`kumar_synthetic`, 0.5% noise) with `--draws` bootstrap draws, stored as the fit
pipeline stores it. Requests go through Django's test client (the full middleware, DRF and URL stack, no
sockets). Each case: 3 warm-up requests, then `--repeat` timed ones; every response must be a 201.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from inprocess import fitted_team
from stack import machine_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()

    fitted = fitted_team("bench-plans", draws=args.draws)
    client, result, fit_seconds = fitted.client, fitted.result, fitted.fit_seconds
    finite = int(np.all(np.isfinite(result.draws), axis=1).sum())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("flops 1e22, untied bits 3..16 (2744 configurations)", {"budget": {"flops": 1e22}}),
        (
            "flops 1e22, post_train_bits 4, memory cap 8 GB",
            {"budget": {"flops": 1e22}, "constraints": {"post_train_bits": 4, "weights_memory_max_bytes": 8e9}},
        ),
        (
            "20,000 H100-hours, hardware cost model",
            {"budget": {"gpu_hours": 20000, "hardware": "h100"}, "cost_model": "hardware"},
        ),
        ("flops 1e22, n_params fixed at 1e9", {"budget": {"flops": 1e22}, "constraints": {"n_params": 10**9}}),
        ("flops 1e22, tied bits (14 configurations)", {"budget": {"flops": 1e22}, "constraints": {"tie_bits": True}}),
    ]
    print(f"{machine_line()}; NumPy {np.__version__}")
    print(f"fit: precision on kumar_synthetic, {finite}/{args.draws} finite draws, fitted in {fit_seconds:.1f} s")
    print(f"database: {os.environ['DATABASE_URL'].split('://')[0]}; {args.repeat} timed requests per case\n")
    print("| case | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for label, extra in cases:
        body = {"family": "kumar", "law": "precision", **extra}
        samples = []
        for i in range(3 + args.repeat):
            t0 = time.perf_counter()
            response = client.post("/api/v1/plans/", body, format="json")
            elapsed = (time.perf_counter() - t0) * 1e3
            if response.status_code != 201:
                raise SystemExit(f"{label}: {response.status_code} {response.content[:500]!r}")
            if i >= 3:
                samples.append(elapsed)
        p50, p99 = np.percentile(samples, [50, 99])
        print(f"| `POST /plans/` {label} | {p50:.1f} | {p99:.1f} | {max(samples):.1f} |")
    samples = []
    for i in range(3 + args.repeat):
        t0 = time.perf_counter()
        response = client.get("/api/v1/plans/?page_size=100")
        if i >= 3:
            samples.append((time.perf_counter() - t0) * 1e3)
        assert response.status_code == 200
    p50, p99 = np.percentile(samples, [50, 99])
    print(f"| `GET /plans/?page_size=100` (100 stored plans per page) | {p50:.1f} | {p99:.1f} | {max(samples):.1f} |")


if __name__ == "__main__":
    main()
