"""WSGI entry point for gunicorn."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()


def _freeze_startup_objects() -> None:
    """Move what the app holds for its whole life (modules, URLconf, views, serializers) out of the garbage
    collector's reach: a full collection, which a request building many objects (a bulk post) triggers, then
    scans only what requests create. This cut a 1,000-run bulk post's CPU by about a fifth (docs/benchmarks.md)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every view now rather than on the first request)
    gc.collect()
    gc.freeze()


_freeze_startup_objects()
