"""Reading the export's CSV format (one row per run and evaluation) back into run payloads, without Django.

The columns and rules are those of the server's export (see the last section of docs/api.md):
rows of one run share its `id` (or its `external_id`), empty cells mean "not given", server-owned
columns are ignored, and the single leading `'` the export adds to formula-like text is removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

EXPORT_COLUMNS = (
    "id",
    "external_id",
    "name",
    "family",
    "n_params",
    "param_count",
    "n_tokens",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "number_format",
    "exponent_bits",
    "mantissa_bits",
    "final_loss",
    "status",
    "dataset",
    "eval_set",
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "seq_len",
    "metadata",
    "excluded",
    "exclusion_reason",
    "trained_at",
    "created_at",
    "updated_at",
    "post_train_bits",
    "method",
    "eval_loss",
)
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
INT_COLUMNS = frozenset(
    {
        "n_params",
        "n_tokens",
        "exponent_bits",
        "mantissa_bits",
        "n_layers",
        "d_model",
        "n_heads",
        "n_kv_heads",
        "seq_len",
    }
)
FLOAT_COLUMNS = frozenset({"weight_bits", "activation_bits", "kv_bits", "final_loss", "post_train_bits", "eval_loss"})
TEXT_COLUMNS = frozenset({"external_id", "name", "family", "dataset", "eval_set", "exclusion_reason", "method"})
SERVER_COLUMNS = frozenset({"id", "created_at", "updated_at"})
EVALUATION_COLUMNS = frozenset({"post_train_bits", "method", "eval_loss"})


class CsvFormatError(ValueError):
    """The file is not in the export's format; the message names the line and column."""


def _typed(column: str, raw: str, line: int) -> Any:
    try:
        if column in INT_COLUMNS:
            number = float(raw)
            return int(raw) if raw.lstrip("-").isdigit() else (int(number) if number.is_integer() else number)
        if column in FLOAT_COLUMNS:
            return float(raw)
        if column == "excluded":
            if raw.lower() not in {"true", "false", "1", "0"}:
                raise ValueError(f"expected true or false, got {raw!r}")
            return raw.lower() in {"true", "1"}
        if column == "metadata":
            return json.loads(raw[1:] if raw.startswith("'") else raw)
    except ValueError as exc:
        raise CsvFormatError(f"line {line}, column {column}: {exc}") from None
    if column in TEXT_COLUMNS and raw.startswith("'") and raw[1:].startswith(SPREADSHEET_TRIGGERS):
        return raw[1:]
    return raw


def content_external_id(payload: dict[str, Any], *, prefix: str = "csv") -> str:
    """A stable external_id from a run's content, so importing the same file twice makes no duplicates."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def read_runs(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Group the rows of an exported CSV into run payloads (with nested `evaluations`), in file order.

    A run without an `external_id` gets one derived from its content (`csv-<hash>`), so that a
    re-import updates the runs of the first import instead of adding copies.
    """
    reader = csv.DictReader(lines)
    columns = set(reader.fieldnames or [])
    missing = {"n_params", "n_tokens"} - columns
    if missing:
        raise CsvFormatError(f"missing column(s): {', '.join(sorted(missing))}")
    unknown = columns - set(EXPORT_COLUMNS)
    if unknown:
        raise CsvFormatError(f"unknown column(s): {', '.join(sorted(unknown))}")
    current: dict[str, Any] | None = None
    current_key: str | None = None
    for row in reader:
        line = reader.line_num
        key = row.get("id") or row.get("external_id") or f"line {line}"
        if current is None or key != current_key:
            if current is not None:
                yield _finish(current)
            current = {
                column: _typed(column, raw, line)
                for column, raw in row.items()
                if column not in SERVER_COLUMNS and column not in EVALUATION_COLUMNS and raw not in ("", None)
            }
            current_key = key
        if row.get("post_train_bits"):
            evaluation: dict[str, Any] = {
                "post_train_bits": _typed("post_train_bits", row["post_train_bits"], line),
                "loss": _typed("eval_loss", row.get("eval_loss") or "", line),
            }
            if row.get("method"):
                evaluation["method"] = _typed("method", row["method"], line)
            current.setdefault("evaluations", []).append(evaluation)
    if current is not None:
        yield _finish(current)


def _finish(payload: dict[str, Any]) -> dict[str, Any]:
    if not payload.get("external_id"):
        payload["external_id"] = content_external_id(payload)
    return payload
