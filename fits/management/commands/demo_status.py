"""manage.py demo_status [--wait-for-server] [--follow] [--credentials-file PATH]: where to go once `make run` is up.

`make run` starts this next to the web server and the workers. It waits until the server answers, prints a short
box (the admin, its login, the demo key and the file that holds them), then follows the demo team's fits, printing
a line as each law lands, and prints the box again when they are all done: the last thing on the screen is what a
new user needs next.
"""

import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from fits.management.commands.load_demo import read_credentials
from fits.models import Fit, FitChunk, FitScope
from runs.models import FamilyChange, Team

SERVER_WAIT_SECONDS = 120
FOLLOW_SECONDS = 30 * 60
POLL_SECONDS = 2.0
LINE_SECONDS = 10.0  # between progress lines while only the bootstrap moves; a law landing prints at once


@dataclass(frozen=True)
class DemoProgress:
    """The demo team's refits: laws with a finished fit out of the laws its families have, and the work left."""

    laws: int  # (family, law) scopes of team demo
    fitted: int  # of them, those with a succeeded fit
    failed: int  # of them, those whose newest finished fit failed
    busy: int  # fits queued or running, laws waiting for their next version, families waiting for their refit
    waiting: int = 0  # of them, families whose changed runs wait for the refit (it decides which laws apply)
    chunks_done: int = 0  # bootstrap chunks computed of the fits running
    chunks: int = 0  # bootstrap chunks the fits running need

    @property
    def done(self) -> bool:
        return self.busy == 0

    def line(self, seconds: float) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        waiting = (
            f"; {self.waiting} famil{'y' if self.waiting == 1 else 'ies'} waiting for the refit" if self.waiting else ""
        )
        running = f"; bootstrap {self.chunks_done} of {self.chunks} chunks of the rest" if self.chunks else ""
        return (
            f"[bitscale] demo fits: {self.fitted} of {self.laws} laws fitted{failed}{waiting}{running} "
            f"({seconds:.0f} s)"
        )


def demo_progress() -> DemoProgress | None:
    """The demo team's fit progress; None when there is no team `demo`.

    A law counts once it has a version or waits for its next one (a dirty scope); which laws a family gets is
    decided by its refit (the fp law only where runs report a floating-point format), so until then the family
    counts as waiting.
    """
    team = Team.objects.filter(slug="demo").first()
    if team is None:
        return None
    waiting = FamilyChange.objects.filter(team=team, pending_since__isnull=False).count()
    scopes = list(FitScope.objects.filter(team=team).values_list("family", "law", "dirty_since"))
    fits = Fit.objects.filter(team=team)
    newest: dict[tuple[str, str], str] = {}
    for family, law, status in fits.order_by("version").values_list("family", "law", "status"):
        newest[(family, law)] = status
    succeeded = set(fits.filter(status=Fit.Status.SUCCEEDED).values_list("family", "law").distinct())
    dirty = {(family, law) for family, law, since in scopes if since is not None}
    running = list(fits.in_flight().values_list("pk", "n_bootstrap", "chunk_size"))
    return DemoProgress(
        laws=len(set(newest) | dirty),
        fitted=len(succeeded),
        failed=sum(1 for status in newest.values() if status == Fit.Status.FAILED),
        busy=len(running) + len(dirty) + waiting,
        waiting=waiting,
        chunks_done=FitChunk.objects.filter(fit_id__in=[pk for pk, _, _ in running]).count(),
        chunks=sum(math.ceil(draws / size) for _, draws, size in running if size),
    )


def demo_box(*, site: str, credentials: dict[str, str], credentials_file: Path | None, note: str = "") -> str:
    """The few lines a new user needs, framed: the admin and its login, the API key and where they are saved."""
    password = credentials.get("DEMO_ADMIN_PASSWORD")
    key = credentials.get("DEMO_KEY")
    lines = [f"Bitscale is running at {site}/", ""]
    login = f"user demo, password {password}" if password else "user demo (password as set before)"
    lines.append(f"Admin     {site}/admin/  ({login})")
    lines.append(f"API key   {key}" if key else "API key   make one: .venv/bin/python manage.py create_api_key demo")
    if credentials_file is not None and credentials:
        lines.append(f"Saved in  {credentials_file}: `. {credentials_file}` sets DEMO_KEY for the README's commands")
    lines.append(f"API docs  {site}/api/v1/docs/")
    if note:
        lines += ["", note]
    width = max(len(line) for line in lines)
    return "\n".join(
        ["┌" + "─" * (width + 2) + "┐", *(f"│ {line:<{width}} │" for line in lines), "└" + "─" * (width + 2) + "┘"]
    )


class Command(BaseCommand):
    help = "Print where to go once `make run` is up (admin, login, demo key) and follow the demo's fits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--credentials-file", type=Path, help="the file load_demo wrote (make run: var/demo.env)")
        parser.add_argument("--wait-for-server", action="store_true", help="first wait until the server answers")
        parser.add_argument("--follow", action="store_true", help="follow the demo's fits until they are done")

    def handle(
        self, *args: Any, credentials_file: Path | None, wait_for_server: bool, follow: bool, **options: Any
    ) -> None:
        site = settings.SITE_URL.rstrip("/")
        credentials = read_credentials(credentials_file) if credentials_file else {}
        if wait_for_server and not self._wait_for(f"{site}/healthz"):
            self.stdout.write(f"[bitscale] the web server did not answer at {site} in {SERVER_WAIT_SECONDS} s")
            return
        progress = demo_progress()
        if progress is None or progress.done or not follow:
            self._box(site, credentials, credentials_file, self._summary(progress))
            return
        self._box(
            site,
            credentials,
            credentials_file,
            "The workers are fitting the demo's laws (about 1-3 minutes; progress below).",
        )
        started = time.monotonic()
        final = self._follow(progress, started)
        note = self._summary(final, seconds=time.monotonic() - started)
        self._box(site, credentials, credentials_file, note)

    def _follow(self, progress: DemoProgress, started: float) -> DemoProgress | None:
        shown, shown_at = progress, time.monotonic()
        self.stdout.write(progress.line(0))
        current: DemoProgress | None = progress
        while time.monotonic() - started < FOLLOW_SECONDS:
            time.sleep(POLL_SECONDS)
            current = demo_progress()
            if current is None or current.done:
                return current
            now = time.monotonic()
            landed = (current.laws, current.fitted, current.failed) != (shown.laws, shown.fitted, shown.failed)
            if landed or now - shown_at >= LINE_SECONDS:
                self.stdout.write(current.line(now - started))
                shown, shown_at = current, now
        return current

    @staticmethod
    def _summary(progress: DemoProgress | None, seconds: float | None = None) -> str:
        if progress is None:
            return "No team `demo` here: `manage.py load_demo` loads it."
        if not progress.done:
            return f"Demo fits still running ({progress.fitted} laws fitted so far): see the worker's log."
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        failed = f" ({progress.failed} failed: see Fits in the admin)" if progress.failed else ""
        return f"Demo fits done{took}: {progress.fitted} of {progress.laws} laws fitted{failed}."

    def _box(self, site: str, credentials: dict[str, str], credentials_file: Path | None, note: str) -> None:
        self.stdout.write(
            "\n" + demo_box(site=site, credentials=credentials, credentials_file=credentials_file, note=note)
        )

    @staticmethod
    def _wait_for(url: str) -> bool:
        deadline = time.monotonic() + SERVER_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  our own server, http
                    if response.status < 500:
                        return True
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    return True
            except OSError:
                pass
            time.sleep(0.5)
        return False
