"""Django's PostgreSQL backend with a health check that costs no round trip (config.db.base)."""

POSTGRESQL = "django.db.backends.postgresql"


def engine(name: str) -> str:
    """The ENGINE to use for a DATABASE_URL's engine `name`: this package for PostgreSQL, else `name`."""
    return "config.db" if name == POSTGRESQL else name
