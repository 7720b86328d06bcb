"""A local spool of runs the server could not take yet: JSON lines, appended under a lock file.

Each line is one entry `{"id": ..., "url": ..., "spooled_at": ..., "payload": {...}}`. Appends and
rewrites hold an exclusive `flock` on `<spool>.lock`, so concurrent training scripts on one machine
never interleave lines; removal writes the remaining lines to a temporary file and renames it over
the spool, so a crash leaves either the old spool or the new one, never half of one. A line that
does not parse (a writer killed mid-line on a filesystem without the lock) is moved to
`<spool>.rejected.jsonl` rather than dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; appends are still single writes of whole lines
    fcntl = None  # type: ignore[assignment]


def default_spool_path() -> Path:
    """`$BITSCALE_SPOOL`, else `$XDG_CACHE_HOME/bitscale/spool.jsonl`, else `~/.cache/bitscale/spool.jsonl`."""
    if os.environ.get("BITSCALE_SPOOL"):
        return Path(os.environ["BITSCALE_SPOOL"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bitscale" / "spool.jsonl"


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled run: where it was meant to go and the exact payload to post."""

    id: str
    url: str
    spooled_at: str
    payload: dict[str, Any]

    def to_line(self) -> str:
        record = {"id": self.id, "url": self.url, "spooled_at": self.spooled_at, "payload": self.payload}
        return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"


class Spool:
    """The spool file at `path`; safe to share between processes on one machine."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rejected_path = self.path.with_name(self.path.stem + ".rejected.jsonl")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def append(self, payloads: Iterable[dict[str, Any]], *, url: str) -> list[SpoolEntry]:
        """Add payloads in one write, flushed to disk before returning."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        entries = [SpoolEntry(id=uuid.uuid4().hex, url=url, spooled_at=now, payload=p) for p in payloads]
        if not entries:
            return entries
        data = "".join(entry.to_line() for entry in entries).encode()
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return entries

    def entries(self) -> list[SpoolEntry]:
        """Every readable entry, in the order spooled."""
        with self._locked():
            return self._read()

    def __len__(self) -> int:
        return len(self.entries())

    def remove(self, ids: Iterable[str]) -> int:
        """Drop the entries with these ids (acknowledged by the server); returns how many are left."""
        gone = set(ids)
        with self._locked():
            kept = [entry for entry in self._read() if entry.id not in gone]
            self._rewrite(kept)
        return len(kept)

    def reject(self, entries: Iterable[SpoolEntry], errors: dict[str, Any]) -> None:
        """Move entries the server refused (400) out of the spool, with their errors, so they stop blocking sync."""
        moved = list(entries)
        with self._locked():
            with open(self.rejected_path, "a", encoding="utf-8") as out:
                for entry in moved:
                    record = json.loads(entry.to_line())
                    record["errors"] = errors.get(entry.id, {})
                    out.write(json.dumps(record) + "\n")
            gone = {entry.id for entry in moved}
            self._rewrite([entry for entry in self._read() if entry.id not in gone])

    def _read(self) -> list[SpoolEntry]:
        if not self.path.exists():
            return []
        entries: list[SpoolEntry] = []
        broken: list[str] = []
        with open(self.path, encoding="utf-8") as spool:
            for line in spool:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    entries.append(SpoolEntry(record["id"], record["url"], record["spooled_at"], record["payload"]))
                except (ValueError, KeyError, TypeError):
                    broken.append(line if line.endswith("\n") else line + "\n")
        if broken:
            with open(self.rejected_path, "a", encoding="utf-8") as out:
                out.writelines(broken)
            self._rewrite(entries)
        return entries

    def _rewrite(self, entries: list[SpoolEntry]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.writelines(entry.to_line() for entry in entries)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)
