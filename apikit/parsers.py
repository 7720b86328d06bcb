"""JSON parsing: NaN and Infinity reach the fields (which reject them by name); oversize bodies are 413."""

import codecs
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "Request body too large; the limit is 5 MB."
    default_code = "payload_too_large"


class StrictJSONParser(JSONParser):
    """application/json only. Unlike DRF's default, NaN and Infinity literals parse, so the error can
    name the field that carried them instead of a bare 'JSON parse error'."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.load(codecs.getreader(encoding)(stream))
        except RequestDataTooBig:
            raise PayloadTooLarge() from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
