"""Worst-case CPU of one plan or suggestion request: the largest inputs the API accepts.

Run: .venv/bin/python bench/request_caps.py [--draws 200] [--repeat 1]

A throwaway SQLite database (or DATABASE_URL) is migrated; a precision fit (`fits.laws.fit_law` on Kumar's
synthetic sweep, `--draws` bootstrap draws) is stored as the fit pipeline stores it. Each case is one request
through Django's test client (full middleware and DRF stack, no sockets); the figures are the process CPU time
and the wall time of the request (the worst of `--repeat`), and the status it answered. A request the caps
refuse answers 400 naming the field, at once.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from inprocess import fitted_team
from stack import machine_line

WIDE = [round(1 + 15 * i / 511, 6) for i in range(512)]  # 512 fractional widths in [1, 16]


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    plan = {"family": "kumar", "law": "precision", "budget": {"flops": 1e22}}
    suggest = {**plan, "experiment_budget": {"flops": 1e19}}
    return [
        ("plan, defaults (2744 configurations)", "plans", plan),
        (
            "plan, tie_bits, 512 bits_choices",
            "plans",
            {**plan, "constraints": {"tie_bits": True, "bits_choices": WIDE}},
        ),
        (
            "plan, tie_bits, 64 bits_choices",
            "plans",
            {**plan, "constraints": {"tie_bits": True, "bits_choices": WIDE[::8]}},
        ),
        ("plan, untied, 512 bits_choices (134M)", "plans", {**plan, "constraints": {"bits_choices": WIDE}}),
        ("plan, untied, 27 bits_choices (19683)", "plans", {**plan, "constraints": {"bits_choices": WIDE[::19][:27]}}),
        ("plan, untied, 20 bits_choices (8000)", "plans", {**plan, "constraints": {"bits_choices": WIDE[::25][:20]}}),
        ("suggestions, defaults", "suggestions", suggest),
        (
            "suggestions, tie_bits, 512 bits_choices",
            "suggestions",
            {**suggest, "constraints": {"tie_bits": True, "bits_choices": WIDE}},
        ),
        (
            "suggestions, tie_bits, 64 bits_choices",
            "suggestions",
            {**suggest, "constraints": {"tie_bits": True, "bits_choices": WIDE[::8]}},
        ),
        (
            "suggestions, untied, 20 bits_choices (8000)",
            "suggestions",
            {**suggest, "constraints": {"bits_choices": WIDE[::25][:20]}},
        ),
        ("suggestions, untied, 512 bits_choices", "suggestions", {**suggest, "constraints": {"bits_choices": WIDE}}),
        ("plan, budget 5e-324 FLOPs", "plans", {**plan, "budget": {"flops": 5e-324}}),
        (
            "suggestions, max_suggestions 10, budget 1e35",
            "suggestions",
            {**suggest, "budget": {"flops": 1e35}, "max_suggestions": 10},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    client = fitted_team("bench-caps", draws=args.draws).client
    print(f"{machine_line()}; NumPy {np.__version__}; fit with {args.draws} draws\n")
    print("| request | status | CPU s | wall s |")
    print("|---|---|---|---|")
    for label, path, body in cases():
        worst = wall = 0.0
        status = 0
        for _ in range(args.repeat):
            t0, w0 = time.process_time(), time.perf_counter()
            response = client.post(f"/api/v1/{path}/", body, format="json")
            worst = max(worst, time.process_time() - t0)
            wall = max(wall, time.perf_counter() - w0)
            status = response.status_code
            if status >= 500:
                raise SystemExit(f"{label}: {status} {response.content[:300]!r}")
        print(f"| {label} | {status} | {worst:.2f} | {wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
