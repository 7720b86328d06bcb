"""manage.py create_api_key <team-slug> [--read-only] [--label TEXT]: print a new key on the last line."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.models import Team
from runs.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a team; the key is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_slug")
        parser.add_argument("--read-only", action="store_true", help="The key may read but not write.")
        parser.add_argument("--label", default="", help="What the key is for, e.g. the cluster or script.")

    def handle(self, *args: Any, team_slug: str, read_only: bool, label: str, **options: Any) -> None:
        team = Team.objects.filter(slug=team_slug).first()
        if team is None:
            raise CommandError(f"No team {team_slug!r}; create it with: manage.py create_team {team_slug}")
        key, secret = api_key_create(team=team, read_only=read_only, label=label)
        access = "read-only" if key.read_only else "read-write"
        self.stderr.write(f"Created a {access} key for team {team.slug}. It is shown once; store it now.")
        self.stdout.write(secret)
