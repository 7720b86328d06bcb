"""manage.py create_team <slug> [--name "Display name"]: create a team; again is a no-op."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.services import team_get_or_create


class Command(BaseCommand):
    help = "Create a team (running it again with the same slug changes nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="Short identifier: letters, digits, hyphens, underscores.")
        parser.add_argument("--name", default="", help="Display name.")

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            team, created = team_get_or_create(slug=slug, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        if created:
            self.stdout.write(f"Created team {team.slug}.")
        else:
            self.stdout.write(f"Team {team.slug} already exists; nothing changed.")
