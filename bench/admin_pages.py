"""Times the admin pages a reviewer opens, over HTTP, against a running server with the demo data (`make run`).

Run, with `make run` up and its demo fits done:
    .venv/bin/python bench/admin_pages.py --url http://localhost:8000 --credentials var/demo.env [--repeat 5]
(or `--password P --key K` instead of the credentials file).

It logs in through the admin's login form as `demo`, logs 20 MLflow runs with a 500-step loss curve each
through the MLflow REST API (so the MLflow run list and a run's loss curve have data), plans a run through the
"Plan a run" form (timed: the POST that plans and stores it), then times each page: its first view, and the
median and worst of `--repeat` more. A fit's plots are images of their own: each is timed on its first request
(rendered then, unless a worker rendered it at publish) and again. Every response must be a 200 (or the form's
302). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import machine_line  # noqa: E402

PLOT_KEYS = ("observed-vs-predicted", "residuals", "loss-vs-bits", "effective-params", "ptq", "density")


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0]
    return values


def login(client: httpx.Client, password: str) -> None:
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, "no login form"
    done = client.post(
        "/admin/login/?next=/admin/",
        data={"username": "demo", "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{client.base_url}/admin/login/"},
    )
    if done.status_code != 302:
        raise SystemExit(f"login failed: {done.status_code}")


def log_mlflow_runs(base: str, key: str, count: int = 20, steps: int = 500) -> None:
    """`count` MLflow runs in experiment `bench-admin`, each with params and a `steps`-point train_loss curve."""
    api = httpx.Client(base_url=f"{base}/api/2.0/mlflow", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    name = f"bench-admin-{uuid.uuid4().hex[:6]}"
    experiment = api.post("/experiments/create", json={"name": name}).json()["experiment_id"]
    for i in range(count):
        run = api.post("/runs/create", json={"experiment_id": experiment, "run_name": f"tiny-{i}"}).json()
        run_id = run["run"]["info"]["run_id"]
        params = [{"key": "n_params", "value": str(10**6 * (i + 1))}, {"key": "n_tokens", "value": "2e7"}]
        metrics = [
            {"key": "train_loss", "value": 5.0 - 2.0 * step / steps + 0.01 * (i % 3), "timestamp": step, "step": step}
            for step in range(steps)
        ]
        metrics.append({"key": "final_loss", "value": 3.0 + 0.01 * i, "timestamp": steps, "step": steps})
        for start in range(0, len(metrics), 1000):
            batch = {"run_id": run_id, "metrics": metrics[start : start + 1000]}
            if start == 0:
                batch["params"] = params
            api.post("/runs/log-batch", json=batch).raise_for_status()
        api.post("/runs/update", json={"run_id": run_id, "status": "FINISHED"}).raise_for_status()


def timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    return time.perf_counter() - started, response


def plan_through_the_form(client: httpx.Client) -> tuple[float, str]:
    """Plan 1e21 FLOPs for kumar-synthetic through "Plan a run"; (seconds of the POST, the plan page's path)."""
    page = client.get("/admin/planner/plan/add/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    family = re.search(r'<option value="(\d+:kumar-synthetic)"', page)
    assert token is not None
    form = {"family": family.group(1)} if family else {}
    if family is None:  # the form before the family select (issue 25) took the team and the family apart
        team = re.search(r'<select name="team"[^>]*>.*?<option value="(\d+)"', page, re.S)
        assert team is not None, "kumar-synthetic is not offered: are the demo fits done?"
        form = {"team": team.group(1), "family": "kumar-synthetic"}
    form |= {
        "csrfmiddlewaretoken": token.group(1),
        "law": "auto",
        "flops": "1e21",
        "cost_model": "linear_bits",
        "constraints": '{"post_train_bits": 4}',
        "_plan": "Plan",
    }
    referer = {"Referer": f"{client.base_url}/admin/planner/plan/add/"}
    seconds, response = timed(client, "POST", "/admin/planner/plan/add/", data=form, headers=referer)
    if response.status_code != 302:
        raise SystemExit(f"the plan form answered {response.status_code}")
    return seconds, response.headers["location"]


def time_page(client: httpx.Client, label: str, path: str, repeat: int) -> tuple[float, httpx.Response]:
    """Time the first view of `path` and `repeat` more; print the table's row."""
    first, response = timed(client, "GET", path)
    if response.status_code != 200:
        raise SystemExit(f"{label}: {path} answered {response.status_code}")
    again = [timed(client, "GET", path)[0] for _ in range(repeat)] or [first]
    print(
        f"| {label} | {first * 1e3:.0f} | {statistics.median(again) * 1e3:.0f} | {max(again) * 1e3:.0f} "
        f"| {len(response.content) / 1024:.0f} |"
    )
    return first, response


def first_id(client: httpx.Client, path: str, pattern: str) -> str:
    match = re.search(pattern, client.get(path).text)
    if match is None:
        raise SystemExit(f"nothing to open on {path}")
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:8000")
    parser.add_argument("--credentials", type=Path, help="the file make run writes (var/demo.env)")
    parser.add_argument("--password", help="the demo user's password (instead of --credentials)")
    parser.add_argument("--key", help="the demo team's API key (instead of --credentials)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    values = read_env(args.credentials) if args.credentials else {}
    password = args.password or values.get("DEMO_ADMIN_PASSWORD")
    key = args.key or values.get("DEMO_KEY")
    if not password or not key:
        raise SystemExit("give --credentials var/demo.env, or --password and --key")

    base = args.url.rstrip("/")
    client = httpx.Client(base_url=base, timeout=300)
    login(client, password)
    log_mlflow_runs(base, key)
    plan_seconds, plan_path = plan_through_the_form(client)

    fit_ids = re.findall(r'href="/admin/fits/fit/(\d+)/change/', client.get("/admin/fits/fit/").text)
    mlflow_run = first_id(client, "/admin/mlflow_compat/mlflowrun/", r'href="/admin/runs/run/(\d+)/change/"')
    demo_run = first_id(client, "/admin/runs/run/?family=kumar-synthetic", r'href="/admin/runs/run/(\d+)/change/')
    pages = [
        ("run list", "/admin/runs/run/"),
        ("run page (demo run)", f"/admin/runs/run/{demo_run}/change/"),
        ("run page (MLflow run, 500-step loss curve)", f"/admin/runs/run/{mlflow_run}/change/"),
        ("fit list", "/admin/fits/fit/"),
        *((f"fit page {fit_id}", f"/admin/fits/fit/{fit_id}/change/") for fit_id in fit_ids),
        ("plan list", "/admin/planner/plan/"),
        ("plan page", plan_path),
        ("plan form", "/admin/planner/plan/add/"),
        ("MLflow run list", "/admin/mlflow_compat/mlflowrun/"),
    ]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{machine_line()}; {uptime}")
    print(f"server: {base}; {args.repeat} more views per page after the first\n")
    print(f"Plan a run (POST, plans and stores a 1e21-FLOP plan): {plan_seconds * 1e3:.0f} ms\n")
    print("| page | first view ms | median ms | worst ms | KB |")
    print("|---|---|---|---|---|")
    worst_first = 0.0
    with_plots = []  # fits whose page links its plots (succeeded fits; the plots were inline before issue 25)
    for label, path in pages:
        first, response = time_page(client, label, path, args.repeat)
        worst_first = max(worst_first, first)
        if label.startswith("fit page") and "/plot/" in response.text:
            with_plots.append(label.removeprefix("fit page "))
    for fit_id in with_plots:
        for key in PLOT_KEYS:
            first, _ = time_page(
                client, f"fit {fit_id} plot {key}", f"/admin/fits/fit/{fit_id}/plot/{key}.svg", args.repeat
            )
            worst_first = max(worst_first, first)
    print(f"\nslowest first view: {worst_first * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
