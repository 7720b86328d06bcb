"""OpenAPI schema: the error responses every endpoint can give (the Bearer key scheme is runs.api.openapi)."""

from typing import Any

from drf_spectacular.openapi import AutoSchema

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "description": "Messages by field name; `detail` or `non_field_errors` for the rest (docs/api.md).",
            "additionalProperties": True,
        }
    },
    "required": ["errors"],
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
COMMON_ERRORS = {
    "400": "Bad input; the field is named and nothing was written.",
    "401": "Missing, unknown or revoked API key.",
    "403": "A read-only key tried to write.",
    "404": "No such object for this team (another team's objects are never revealed).",
    "413": "Request body over 5 MB.",
    "429": "This key is over its rate limit.",
    "503": "The database is unreachable; nothing was written.",
}


class BitscaleAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the contract's error responses, so clients (and schemathesis) know them."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, description in COMMON_ERRORS.items():
            if code not in responses:
                body: dict[str, Any] = {
                    "description": description,
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                }
                if code in {"429", "503"}:
                    body["headers"] = RETRY_AFTER
                responses[code] = body
        return responses
