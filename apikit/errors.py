"""One error shape for the whole API: {"errors": {field: [messages]}} (docs/api.md, Conventions)."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType, ValidationError
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from apikit.exceptions import Conflict, DomainError, NotFound
from config.middleware import DATABASE_RETRY_AFTER_SECONDS


def _as_field_map(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) == {"detail"} and not isinstance(data["detail"], list | dict):
            return {"detail": [data["detail"]]}
        return data
    if isinstance(data, list):
        return {"non_field_errors": data}
    return {"detail": [data]}


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain error: 404 not found, 409 conflict, 400 any other refusal."""
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, Conflict):
        return status.HTTP_409_CONFLICT
    return status.HTTP_400_BAD_REQUEST


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Give every 4xx body the shape {"errors": {...}}; services' domain errors answer with their own status."""
    if isinstance(exc, OperationalError | InterfaceError):
        return Response(
            {"errors": {"detail": ["The database is unavailable; nothing was written. Retry shortly."]}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, DomainError):
        return Response({"errors": exc.errors}, status=domain_status(exc))
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(detail=as_serializer_error(exc))
    if isinstance(exc, UnsupportedMediaType):
        # The contract lists a wrong content type among bad input: a 400 that names the header.
        message = f"{exc.detail} Send the body as JSON with 'Content-Type: application/json'."
        return Response({"errors": {"content_type": [message]}}, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is not None:
        response.data = {"errors": _as_field_map(response.data)}
    return response
