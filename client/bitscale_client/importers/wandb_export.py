"""W&B exports of a project's runs: the runs table's CSV download, or JSON written from the public API.

JSON is a list of runs (or `{"runs": [...]}`, or one run per line), each shaped like the public
API's Run: `{"id", "name", "state", "config": {...}, "summary": {...}}`; values wrapped as
`{"value": x, "desc": ...}` (a config.yaml) are unwrapped. The CSV has one row per run with
`Name`, `State` (and `ID` when present) next to the config and summary columns, whose names are
used bare: a CSV cannot say which were config and which summary.
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


def _first(row: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        if row.get(name) not in (None, ""):
            return str(row[name])
    return ""


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
    summary = _unwrap(item.get("summary") or item.get("summary_metrics") or {})
    values = tracker_values(config, summary, params_name="config", metrics_name="summary")
    name = str(item.get("name") or item.get("display_name") or "")
    run_id = str(item.get("id") or item.get("run_id") or _fallback_id(name, values))
    metadata = {key: item[key] for key in ("project", "entity", "group", "url") if item.get(key)}
    return TrackerRun("wandb", run_id, name, str(item.get("state") or ""), values, metadata)


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
        yield TrackerRun("wandb", run_id, name, state, columns, {"csv_line": reader.line_num})
