"""JSON parsing that answers the contract's status codes for bodies that are too large."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "Request body too large; the limit is 5 MB."
    default_code = "payload_too_large"


class StrictJSONParser(JSONParser):
    """application/json only; NaN and Infinity parse, and the fields then reject them by name."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig:
            raise PayloadTooLarge() from None
