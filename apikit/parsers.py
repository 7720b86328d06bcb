"""JSON parsing: NaN and Infinity reach the fields (which reject them by name); oversize bodies are 413."""

import codecs
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from apikit.json_limits import check_depth, refuse_duplicate_keys, too_deep


class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "Request body too large; the limit is 5 MB."
    default_code = "payload_too_large"


class StrictJSONParser(JSONParser):
    """application/json only (a wildcard such as */* is refused like any other type). Unlike DRF's default, NaN
    and Infinity literals parse, so the error can name the field that carried them instead of a bare 'JSON parse
    error'. A repeated key is a 400 naming it; nesting deeper than json_limits.MAX_JSON_DEPTH is a 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if media_type is not None and "*" in media_type.split(";", 1)[0]:
            # DRF matches a wildcard (*/*, application/*) against application/json: a body must say what it is.
            raise UnsupportedMediaType(media_type)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return check_depth(json.load(codecs.getreader(encoding)(stream), object_pairs_hook=refuse_duplicate_keys))
        except RecursionError:
            raise too_deep() from None
        except RequestDataTooBig:
            raise PayloadTooLarge() from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
