"""The ceiling of bench/mlflow_tracking.py: a WSGI app that answers the benchmark's MLflow calls with fixed bodies.

    .venv/bin/python -m gunicorn --chdir bench mlflow_null_server:app -w 4 -b 127.0.0.1:8768

It reads each request body and stores nothing, so the throughput the MLflow clients reach against it is what the
clients and gunicorn alone allow on this machine: no tracking server can do better with the clients on the same
cores. Only the five calls the benchmark makes are answered; anything else is a 404.
"""

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

EXPERIMENT = {
    "experiment_id": "1",
    "name": "bench",
    "artifact_location": "mlflow-artifacts:/1",
    "lifecycle_stage": "active",
    "last_update_time": 0,
    "creation_time": 0,
    "tags": [],
}


def _run_info(run_id: str, status: str = "RUNNING") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": "bench",
        "experiment_id": "1",
        "user_id": "",
        "status": status,
        "start_time": 0,
        "artifact_uri": f"mlflow-artifacts:/1/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }


def _body(method: str, path: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    if method == "GET" and path.endswith("/experiments/get-by-name"):
        return {"experiment": EXPERIMENT}
    if method == "POST" and path.endswith("/runs/create"):
        return {"run": {"info": _run_info(uuid.uuid4().hex), "data": {}, "inputs": {}}}
    if method == "GET" and path.endswith("/runs/get"):  # set_terminated reads the run to print its link
        return {"run": {"info": _run_info(str(payload.get("run_id", ""))), "data": {}, "inputs": {}}}
    if method == "POST" and path.endswith("/runs/log-batch"):
        return {}
    if method == "POST" and path.endswith("/runs/update"):
        return {"run_info": _run_info(str(payload.get("run_id", "")), str(payload.get("status", "FINISHED")))}
    return None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(size) if size else b""
    payload = json.loads(raw) if raw else dict(parse_qsl(environ.get("QUERY_STRING", "")))
    body = _body(environ["REQUEST_METHOD"], environ["PATH_INFO"], payload)
    status = "200 OK" if body is not None else "404 Not Found"
    data = json.dumps(body if body is not None else {"error_code": "ENDPOINT_NOT_FOUND", "message": ""}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
