"""Forecasts through the API (GET /api/v1/runs/{id}/forecast/): the shipped MultiPower and OLMo ladder curves are
logged through the MLflow REST API (params for the schedule, `loss` and `lr` metrics by step), each target cut to
25% / 50% of its planned steps, and its forecast read back; prints MAE per size, 95% interval coverage, and the cost
of a refresh after a 1,000-point log_batch and of a cached read. In-process (Django's test settings on a fresh
SQLite file, bench/inprocess.py's way): nothing listens on a socket. Prints, asserts nothing
(tests/fits/test_forecast_api.py asserts).

    OMP_NUM_THREADS=1 .venv/bin/python bench/forecast_api.py [--quick] [--cases]

Protocols, as bench/curves.py's (docs/curves.md section 7), but through the API:
- MultiPower 100M and 400M: each cosine and WSD target with ONE other decayed run of its size that shares no
  history with it (each admissible lender in turn), each pair its own family; scored against the target's last
  logged loss. The forecast is at the planned end (the API's), which is the last logged step for these curves.
- OLMo ladder: each of the 30 runs cut to its first half with the other 29 known in full (one family; the full copy
  of the target, and of its replicate for the 1xC pair, excluded while it is forecast: the API has no replicate
  marker).
- Cost: a 100,000-point target (cosine, 120,000 planned steps) and a 120,000-point lender logged in 1,000-point
  batches; the worker's refresh (fits.forecasts.forecast_refresh) after one more 1,000-point batch, and a cached
  read (GET, median of 20).
`--quick`: 400M and 3 OLMo sizes only, and a 20,000-point cost history.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from stack import machine_line  # noqa: E402

MLFLOW = "/api/2.0/mlflow"


def setup() -> Any:
    """Django on a fresh SQLite file, a team and an APIClient with its key."""
    workdir = tempfile.mkdtemp(prefix="bitscale-forecast-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from runs.models import Team
    from runs.services import api_key_create

    setup_test_environment()
    call_command("migrate", verbosity=0)
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    _, secret = api_key_create(team=team, label="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def ok(response: Any) -> Any:
    if response.status_code not in (200, 201):
        raise SystemExit(f"{response.request['PATH_INFO']}: {response.status_code} {response.content[:300]!r}")
    return response.json()


class Logger:
    """Logs curves through the MLflow REST API and maps them to Bitscale run ids."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.experiments: dict[str, str] = {}

    def post(self, endpoint: str, body: dict[str, Any]) -> Any:
        return ok(self.client.post(f"{MLFLOW}/{endpoint}", body, format="json"))

    def experiment(self, family: str) -> str:
        if family not in self.experiments:
            self.experiments[family] = self.post("experiments/create", {"name": family})["experiment_id"]
        return self.experiments[family]

    def run(self, family: str, name: str, *, n_params: float, n_tokens: float, plan: Any) -> str:
        run_id = self.post("runs/create", {"experiment_id": self.experiment(family), "run_name": name})["run"]["info"][
            "run_id"
        ]
        kind = plan.decay
        params = {
            "n_params": n_params,
            "n_tokens": n_tokens,
            "total_steps": plan.total_steps,
            "peak_lr": plan.peak_lr,
            "warmup_steps": plan.warmup_steps,
            "lr_schedule": kind,
            "final_lr": plan.final_lr,
        }
        if plan.decay_start is not None:
            params["decay_start"] = plan.decay_start
        if plan.tokens_per_step is not None:
            params["tokens_per_step"] = plan.tokens_per_step
        self.post(
            "runs/log-batch", {"run_id": run_id, "params": [{"key": k, "value": str(v)} for k, v in params.items()]}
        )
        return run_id

    def points(self, run_id: str, steps: Any, values: Any, *, key: str) -> float:
        """Log (step, value) points in batches of 1,000; returns the seconds the requests took."""
        metrics = [
            {"key": key, "value": float(v), "timestamp": 1_700_000_000_000 + int(s), "step": int(s)}
            for s, v in zip(steps, values, strict=True)
        ]
        start = time.perf_counter()
        for i in range(0, len(metrics), 1000):
            self.post("runs/log-batch", {"run_id": run_id, "metrics": metrics[i : i + 1000]})
        return time.perf_counter() - start

    def curve(self, family: str, curve: Any, *, upto: float | None = None, name: str | None = None) -> int:
        """Log a LoggedCurve (its loss and lr up to `upto` steps); returns the Bitscale run id."""
        run_id = self.run(
            family,
            name or curve.name,
            n_params=curve.n_params,
            n_tokens=curve.plan.total_steps * (curve.plan.tokens_per_step or 524_288),
            plan=curve.plan,
        )
        keep = curve.steps <= (upto if upto is not None else np.inf)
        self.points(run_id, curve.steps[keep], curve.loss[keep], key="loss")
        self.points(run_id, curve.steps[keep], curve.lr[keep], key="lr")
        return self.bitscale_id(run_id)

    def bitscale_id(self, run_id: str) -> int:
        tags = self.client.get(f"{MLFLOW}/runs/get", {"run_id": run_id}).json()["run"]["data"].get("tags", [])
        return int(next(t["value"] for t in tags if t["key"] == "bitscale.run_id"))


LAW = {"law": "annealing"}  # the query's law (--law)


def forecast(client: Any, run_id: int) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    body = ok(client.get(f"/api/v1/runs/{run_id}/forecast/", LAW))
    return body, time.perf_counter() - start


def summarise(rows: list[tuple[str, float, float, dict[str, Any], float]], title: str) -> None:
    """rows: (group, fraction, actual, forecast body, seconds)."""
    print(f"\n## {title}")
    print("seen  size   made/n  MAE     worst   bias     cover95  s/forecast (median)")
    for fraction in sorted({r[1] for r in rows}):
        groups = sorted({r[0] for r in rows if r[1] == fraction}, key=_size)
        for group in [*groups, "all"]:
            sub = [r for r in rows if r[1] == fraction and (group == "all" or r[0] == group)]
            made = [r for r in sub if r[3]["forecast"] is not None]
            errors = np.array([r[3]["forecast"]["loss"] - r[2] for r in made])
            covered = [r[3]["forecast"]["interval"][0] <= r[2] <= r[3]["forecast"]["interval"][1] for r in made]
            if not made:
                print(f"{fraction:4.0%}  {group:5s}  0/{len(sub)}  (no forecast: {sub[0][3]['reasons']})")
                continue
            print(
                f"{fraction:4.0%}  {group:5s}  {len(made):2d}/{len(sub):<3d} {np.mean(np.abs(errors)):.4f}  "
                f"{np.max(np.abs(errors)):.4f}  {np.mean(errors):+.4f}  {np.mean(covered):.2f}     "
                f"{statistics.median(r[4] for r in made):.2f}"
            )


def _size(name: str) -> float:
    scale = {"M": 1e6, "B": 1e9}.get(name[-1:], 0.0)
    return scale * float(name[:-1]) if scale else float("inf")


def multipower(client: Any, log: Logger, sizes: tuple[str, ...], show: bool) -> None:
    from fits.laws.curve_validation import multipower_cases

    rows = []
    for case in multipower_cases(sizes):
        (lender,) = case.family
        target = case.target
        family = f"mp-{case.size}-{target.name}-{lender.name}-{int(case.fraction * 100)}".lower().replace("_", "-")
        log.curve(family, lender)
        run_id = log.curve(family, target, upto=case.fraction * target.plan.total_steps)
        body, seconds = forecast(client, run_id)
        rows.append((case.size, case.fraction, target.final_loss, body, seconds))
        if show:
            f = body["forecast"]
            text = f"{f['loss'] - target.final_loss:+.4f}" if f else f"none: {body['reasons']}"
            print(f"  {case.size} {target.name} <- {lender.name} from {case.fraction:.0%}: {text}")
    summarise(rows, "MultiPower through the API, one decayed lender of its size (100M: design set; 400M: held out)")


def olmo(client: Any, log: Logger, sizes: tuple[str, ...], show: bool) -> None:
    from fits.laws.curve_data import load_olmo_ladder_curves
    from runs.models import Run

    curves = {k: c for k, c in load_olmo_ladder_curves().items() if c.group in sizes}
    full = {name: log.curve("olmo", c) for name, c in curves.items()}
    rows = []
    for name, c in curves.items():
        partner = {f"{c.group}-1xC": f"{c.group}-1xC-rerun", f"{c.group}-1xC-rerun": f"{c.group}-1xC"}.get(name)
        hidden = [full[name], *([full[partner]] if partner in full else [])]
        Run.objects.filter(pk__in=hidden).update(excluded=True, exclusion_reason="bench: the target's full copy")
        run_id = log.curve("olmo", c, upto=0.5 * c.plan.total_steps, name=f"{name}-cut")
        body, seconds = forecast(client, run_id)
        rows.append((c.group, 0.5, c.final_loss, body, seconds))
        Run.objects.filter(pk=run_id).update(excluded=True, exclusion_reason="bench: a cut copy")
        Run.objects.filter(pk__in=hidden).update(excluded=False, exclusion_reason="")
        if show:
            f = body["forecast"]
            text = f"{f['loss'] - c.final_loss:+.4f}" if f else f"none: {body['reasons']}"
            print(f"  {name} from 50%: {text}")
    summarise(rows, "OLMo ladder through the API, each run from its first half, the rest of the ladder known")


def cost(client: Any, log: Logger, n: int) -> None:
    from fits.forecasts import forecast_refresh
    from fits.laws.schedules import ScheduleSpec, build_schedule

    total = int(n * 1.2)
    spec = ScheduleSpec(total_steps=total, peak_lr=3e-4, warmup_steps=2000, decay="cosine", final_lr=3e-5)
    sched = build_schedule(spec)
    steps = np.arange(1, total + 1)
    eta = sched.lr[1:] / spec.peak_lr
    loss = 2.5 + 30.0 * np.cumsum(eta) ** -0.5 - 0.08 * (1.0 - eta)
    loss = loss + 0.01 * np.random.default_rng(0).standard_normal(total)
    lender = log.run("cost", "lender", n_params=1e9, n_tokens=total * 524288, plan=spec)
    log.points(lender, steps, loss, key="loss")
    target = log.run("cost", "target", n_params=1e9, n_tokens=total * 524288, plan=spec)
    logging = log.points(target, steps[:n], loss[:n], key="loss")
    target_id = log.bitscale_id(target)
    start = time.perf_counter()
    forecast_refresh(run_id=target_id)
    first = time.perf_counter() - start
    batch = log.points(target, steps[n : n + 1000], loss[n : n + 1000], key="loss")
    start = time.perf_counter()
    forecast_refresh(run_id=target_id)
    refresh = time.perf_counter() - start
    reads = []
    for _ in range(20):  # the default query: the one the worker's refresh caches
        start = time.perf_counter()
        body = ok(client.get(f"/api/v1/runs/{target_id}/forecast/"))
        reads.append((body, time.perf_counter() - start))
    assert all(body["cached"] for body, _ in reads)
    print("\n## Cost (one core, in-process, SQLite)")
    print(f"logging the {n:,}-point target history in 1,000-point log_batch calls: {logging:.1f} s")
    print(f"first forecast of the {n:,}-point target with a {total:,}-point lender: {first:.2f} s")
    print(
        f"a 1,000-point log_batch: {batch:.2f} s; the worker's refresh after it (read, fit, cache): {refresh:.2f} s; "
        f"log_batch + refresh {batch + refresh:.2f} s"
    )
    print(f"cached read (GET, median of 20): {1000 * statistics.median(s for _, s in reads):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", action="store_true", help="print every forecast")
    parser.add_argument("--law", default="annealing", choices=["annealing", "multipower", "auto"])
    args = parser.parse_args()
    LAW["law"] = args.law
    client = setup()
    log = Logger(client)
    print(machine_line(), f"load average {os.getloadavg()[0]:.1f}; law {args.law}")
    started = time.perf_counter()
    multipower(client, log, ("400M",) if args.quick else ("100M", "400M"), args.cases)
    olmo(client, log, ("190M", "760M", "3B") if args.quick else ("190M", "370M", "760M", "1B", "3B"), args.cases)
    cost(client, log, 20_000 if args.quick else 100_000)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
