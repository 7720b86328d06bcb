"""MLflow runs of one experiment, read through MLflow's own client (the optional `mlflow` extra).

Works with a tracking server (`http://...`, `databricks`) and with a local file store (a path or
`file:` URI). MLflow 3 refuses to open file stores unless `MLFLOW_ALLOW_FILE_STORE` is set; the
importer only reads, so it sets that variable for file stores it is pointed at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from bitscale_client.importers.mapping import TrackerRun, tracker_values


class MlflowMissing(ImportError):
    """The `mlflow` package is not installed."""


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or ("://" not in uri and not uri.startswith(("databricks", "sqlite")))


def read_mlflow_runs(tracking_uri: str, experiment: str, *, page_size: int = 1000) -> Iterator[TrackerRun]:
    """Every run of `experiment` (a name, or an id), with its params and latest metric values."""
    if _is_file_store(tracking_uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowMissing("the MLflow importer needs mlflow: pip install 'bitscale-client[mlflow]'") from exc
    client: Any = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        found = client.get_experiment(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    token = None
    while True:
        page = client.search_runs([found.experiment_id], max_results=page_size, page_token=token)
        for run in page:
            params = dict(run.data.params)
            metrics = dict(run.data.metrics)
            values = tracker_values(params, metrics, params_name="params", metrics_name="metrics")
            tags = {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")}
            metadata = {"mlflow_experiment": found.name, **({"mlflow_tags": tags} if tags else {})}
            name = run.info.run_name or run.data.tags.get("mlflow.runName", "")
            times = {"end": run.info.end_time, "created": run.info.start_time}  # milliseconds since the epoch
            yield TrackerRun("mlflow", run.info.run_id, name, run.info.status or "", values, metadata, times)
        token = page.token
        if not token:
            return
