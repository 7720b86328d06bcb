"""The CSV format of runs: one row per (run, evaluation), written by the export and read by import_runs."""

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runs.selectors import EXPORT_COLUMNS

SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
INT_COLUMNS = {
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
FLOAT_COLUMNS = {"weight_bits", "activation_bits", "kv_bits", "final_loss", "post_train_bits", "eval_loss"}
TEXT_COLUMNS = {"external_id", "name", "family", "dataset", "eval_set", "exclusion_reason", "method"}
SERVER_COLUMNS = {"id", "created_at", "updated_at"}  # owned by the server: read back, never written


# Writing ------------------------------------------------------------------------------------


def csv_safe_text(value: str) -> str:
    """Quote text a spreadsheet would run as a formula; a leading apostrophe is doubled, so import can undo it."""
    return "'" + value if value.startswith(SPREADSHEET_TRIGGERS) else value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return csv_safe_text(json.dumps(value, separators=(",", ":"), sort_keys=True))
    if isinstance(value, str):
        return csv_safe_text(value)
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


class _Echo:
    """A file-like object whose write() returns the line, so csv.writer can feed a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """The header, then one CSV line per row of runs.selectors.run_export_rows()."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


# Reading ------------------------------------------------------------------------------------


class CsvFormatError(Exception):
    """The file is not in the export's format (missing columns, unreadable values)."""


@dataclass
class ImportedRun:
    """One run read from the CSV with the line it started on; `fields` are JSON-typed API input."""

    line: int
    fields: dict[str, Any]
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    def as_payload(self) -> dict[str, Any]:
        return {**self.fields, **({"evaluations": self.evaluations} if self.evaluations else {})}


def _typed(column: str, raw: str, line: int) -> Any:
    try:
        if column in INT_COLUMNS:
            number = float(raw)
            return int(raw) if raw.lstrip("-").isdigit() else number
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


def csv_read_runs(lines: Iterable[str]) -> Iterator[ImportedRun]:
    """Group the rows of an exported CSV back into runs with their evaluations, in file order.

    Rows of one run share its `id` (or, for a file written by hand without ids, its `external_id`);
    empty cells mean "not given". Server-owned columns are ignored.
    """
    reader = csv.DictReader(lines)
    missing = {"n_params", "n_tokens"} - set(reader.fieldnames or [])
    if missing:
        raise CsvFormatError(f"missing column(s): {', '.join(sorted(missing))}")
    unknown = set(reader.fieldnames or []) - set(EXPORT_COLUMNS)
    if unknown:
        raise CsvFormatError(f"unknown column(s): {', '.join(sorted(unknown))}")
    current: ImportedRun | None = None
    current_key: str | None = None
    for row in reader:
        line = reader.line_num
        key = row.get("id") or row.get("external_id") or f"line {line}"
        if current is None or key != current_key:
            if current is not None:
                yield current
            fields = {
                column: _typed(column, raw, line)
                for column, raw in row.items()
                if column not in SERVER_COLUMNS
                and column not in {"post_train_bits", "method", "eval_loss"}
                and raw != ""
            }
            current, current_key = ImportedRun(line=line, fields=fields), key
        if row.get("post_train_bits"):
            evaluation = {
                "post_train_bits": _typed("post_train_bits", row["post_train_bits"], line),
                "loss": _typed("eval_loss", row.get("eval_loss", ""), line),
            }
            if row.get("method"):
                evaluation["method"] = _typed("method", row["method"], line)
            current.evaluations.append(evaluation)
    if current is not None:
        yield current
