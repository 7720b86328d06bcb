"""Settings for a developer's machine: debug on, SQLite and the embedded broker by default."""

from config.env import flag
from config.settings.base import *  # noqa: F403

DEBUG = flag("DJANGO_DEBUG", default=True)
