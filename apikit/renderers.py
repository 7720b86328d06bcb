"""The API's JSON renderer: UTF-8 as DRF writes it, and never a 500 for text that UTF-8 cannot hold."""

from typing import Any

from rest_framework.renderers import JSONRenderer


class SafeJSONRenderer(JSONRenderer):
    """DRF's JSONRenderer; a response that echoes a lone surrogate from bad input (an unknown field named
    "\\ud800", a choice that is not one) is written with ASCII escapes instead of failing to encode."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            self.ensure_ascii = True  # type: ignore[misc]  # this request's renderer instance only
            return super().render(data, accepted_media_type, renderer_context)
