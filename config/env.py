"""Typed access to environment variables: the only module that reads os.environ."""

import os

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()  # URLs (DATABASE_URL) are parsed by django-environ

_YES, _NO = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


def flag(name: str, *, default: bool) -> bool:
    """Parse a boolean variable; anything unexpected is a configuration error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _YES | _NO:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected one of true/false/1/0/yes/no/on/off")
    return value in _YES


def integer(name: str, *, default: int, minimum: int = 0) -> int:
    """Parse a non-negative integer variable; a malformed value stops start-up."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


def string(name: str, *, default: str | None = None) -> str:
    """Read a string variable; with no default, a missing value is a configuration error."""
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return raw


def string_list(name: str, *, default: list[str]) -> list[str]:
    """Read a comma-separated list."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


def cache_config(url: str) -> dict[str, object]:
    """A CACHES entry from a cache URL (django-environ's schemes); a Redis cache is the one that falls back to
    local memory while Redis does not answer (config.cache.FailSoftRedisCache)."""
    config: dict[str, object] = env.cache_url_config(url)
    if config["BACKEND"] == REDIS_CACHE:
        config["BACKEND"] = "config.cache.FailSoftRedisCache"
    return config
