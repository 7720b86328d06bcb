"""W&B exports of a project's runs: the runs table's CSV download, or JSON written from the public API.

JSON is a list of runs (or `{"runs": [...]}`, or one run per line), each shaped like the public
API's Run: `{"id", "name", "state", "config": {...}, "summary": {...}}`; values wrapped as
`{"value": x, "desc": ...}` (a config.yaml) are unwrapped. The CSV has one row per run with
`Name`, `State` (and `ID` when present) next to the config and summary columns, whose names are
used bare: a CSV cannot say which were config and which summary.

When training finished (the run's trained_at), first found of: an end time (`ended_at`, `End Time`),
the summary's `_timestamp` (the last log), the last heartbeat (`heartbeatAt`), or the created time
(`createdAt`, `Created`) plus the runtime (summary `_runtime`, `Runtime`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bitscale_client.importers.mapping import MappingError, TrackerRun, tracker_values

ID_COLUMNS = ("ID", "Id", "id", "run_id", "Run ID")
NAME_COLUMNS = ("Name", "name", "display_name")
STATE_COLUMNS = ("State", "state")
END_KEYS = ("ended_at", "endedAt", "end_time", "End Time")
HEARTBEAT_KEYS = ("heartbeat_at", "heartbeatAt", "Heartbeat")
CREATED_KEYS = ("created_at", "createdAt", "Created")
RUNTIME_KEYS = ("_runtime", "runtime", "Runtime")


def _first(row: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        if row.get(name) not in (None, ""):
            return str(row[name])
    return ""


def _times(record: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The run's times as mapping.end_time reads them (the run's own keys, then its summary's)."""
    end = _first(record, END_KEYS) or _first(summary, ("_timestamp",)) or _first(record, HEARTBEAT_KEYS)
    created = _first(record, CREATED_KEYS)
    runtime = _first(summary, RUNTIME_KEYS) or _first(record, RUNTIME_KEYS)
    return {key: value for key, value in (("end", end), ("created", created), ("runtime", runtime)) if value}


def _unwrap_value(value: Any) -> Any:
    """config.yaml stores `{"value": x, "desc": ...}`; the API stores x."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    # Keys starting with "_" are W&B's own bookkeeping (_wandb, _runtime, _timestamp).
    return {key: _unwrap_value(value) for key, value in config.items() if not key.startswith("_")}


def _fallback_id(name: str, values: dict[str, Any]) -> str:
    """Without a run id, the name (or the row's content) keeps re-imports idempotent."""
    if name:
        return f"name-{name}"
    canonical = json.dumps(values, sort_keys=True, default=str)
    return "row-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _from_json_run(item: Any, position: int) -> TrackerRun:
    if not isinstance(item, dict):
        raise MappingError(f"run {position}: expected an object")
    config = _unwrap(item.get("config") or {})
    raw_summary = item.get("summary") or item.get("summary_metrics") or {}
    summary = _unwrap(raw_summary)
    values = tracker_values(config, summary, params_name="config", metrics_name="summary")
    name = str(item.get("name") or item.get("display_name") or "")
    run_id = str(item.get("id") or item.get("run_id") or _fallback_id(name, values))
    metadata = {key: item[key] for key in ("project", "entity", "group", "url") if item.get(key)}
    times = _times(item, raw_summary if isinstance(raw_summary, dict) else {})
    return TrackerRun("wandb", run_id, name, str(item.get("state") or ""), values, metadata, times)


def read_wandb_export(path: Path | str) -> Iterator[TrackerRun]:
    """The runs of a W&B export file, CSV or JSON (chosen by content: JSON starts with `[` or `{`)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data: Any = json.loads(stripped)
        except ValueError:
            data = [json.loads(line) for line in stripped.splitlines() if line.strip()]  # JSON lines
        if isinstance(data, dict):
            data = data.get("runs", [data])
        for position, item in enumerate(data):
            yield _from_json_run(item, position)
        return
    reader = csv.DictReader(text.splitlines())
    for row in reader:
        fields = {key: value for key, value in row.items() if key is not None}
        name, state = _first(fields, NAME_COLUMNS), _first(fields, STATE_COLUMNS)
        columns = {k: v for k, v in fields.items() if k not in ID_COLUMNS + NAME_COLUMNS + STATE_COLUMNS}
        run_id = _first(fields, ID_COLUMNS) or _fallback_id(name, columns)
        times = _times(fields, fields)
        yield TrackerRun("wandb", run_id, name, state, columns, {"csv_line": reader.line_num}, times)
