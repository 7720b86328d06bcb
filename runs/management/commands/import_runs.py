"""manage.py import_runs <file.csv> --team <slug>: load runs in the export's CSV format, all or nothing."""

import sys
from itertools import islice
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from runs.api.serializers import runs_validate
from runs.csvio import CsvFormatError, ImportedRun, csv_read_runs
from runs.models import Team
from runs.services import BatchInvalid, runs_upsert

BATCH = 1000


class Command(BaseCommand):
    help = "Import runs from a CSV with the columns of GET /api/v1/runs/export.csv; nothing is written on error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="CSV file, or - for standard input.")
        parser.add_argument("--team", required=True, help="Slug of the team that will own the runs.")

    def handle(self, *args: Any, path: str, team: str, **options: Any) -> None:
        owner = Team.objects.filter(slug=team).first()
        if owner is None:
            raise CommandError(f"No team {team!r}; create it with: manage.py create_team {team}")
        handle = sys.stdin if path == "-" else self._open(path)
        created = updated = 0
        try:
            with handle, transaction.atomic():
                runs = csv_read_runs(handle)
                while batch := list(islice(runs, BATCH)):
                    try:
                        result = runs_upsert(team=owner, items=self._validated(batch))
                    except BatchInvalid as exc:  # positions in the batch -> lines of the file
                        lines = {str(i): f"line {run.line}" for i, run in enumerate(batch)}
                        raise BatchInvalid({lines.get(k, k): v for k, v in exc.errors.items()}) from None
                    created, updated = created + result.created, updated + result.updated
                    self.stderr.write(f"\r{created + updated} runs imported…", ending="")
        except CsvFormatError as exc:
            raise CommandError(f"{path}: {exc}; nothing was imported.") from None
        except BatchInvalid as exc:
            raise CommandError(f"{path}: {self._describe(exc)}; nothing was imported.") from None
        self.stderr.write("")
        self.stdout.write(f"Imported {created + updated} runs into {owner.slug}: {created} created, {updated} updated.")

    def _open(self, path: str) -> Any:
        try:
            return Path(path).open(newline="", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None

    def _validated(self, batch: list[ImportedRun]) -> list[dict[str, Any]]:
        items, errors = runs_validate([run.as_payload() for run in batch])
        if errors:
            raise BatchInvalid({f"line {batch[int(k)].line}": v for k, v in errors.items()})
        return items

    def _describe(self, exc: BatchInvalid) -> str:
        first = list(exc.errors.items())[:5]
        return "; ".join(f"{where}: {problems}" for where, problems in first)
