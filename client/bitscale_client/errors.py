"""Exceptions raised by the client, one per kind of answer the server can give."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bitscale_client.models import BulkResult


class BitscaleError(Exception):
    """Base of every error the client raises; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors: dict[str, Any] = errors or {}


class ValidationFailed(BitscaleError):
    """400: the server rejected the input; `errors` maps each field (or batch index) to its messages.

    From `log_runs`, `result` says what the batches before the refused one wrote.
    """

    result: BulkResult | None = None


class AuthenticationFailed(BitscaleError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDenied(BitscaleError):
    """403: the key is read-only and the request writes."""


class NotFound(BitscaleError):
    """404: no such object for this key's team (or no current fit yet)."""


class Conflict(BitscaleError):
    """409: the request cannot be served in the current state (e.g. a plan for a family with no fit)."""


class PayloadTooLarge(BitscaleError):
    """413: the request body is over the server's 5 MB limit."""


class ServerUnavailable(BitscaleError):
    """The server could not be reached, or kept answering 5xx or 429, after every retry."""


_BY_STATUS: dict[int, type[BitscaleError]] = {
    400: ValidationFailed,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def error_for_status(status: int, body: Any, *, method: str, url: str) -> BitscaleError:
    """The exception for a non-2xx answer, carrying the contract's `{"errors": {...}}` body when there is one."""
    errors: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("errors"), dict):
        errors = body["errors"]
    elif isinstance(body, dict) and "detail" in body:
        errors = {"detail": [str(body["detail"])]}
    summary = format_errors(errors, limit=3)
    message = f"{method} {url}: HTTP {status}" + (f": {summary}" if summary else "")
    if status >= 500 or status == 429:
        return ServerUnavailable(message, status=status, errors=errors)
    return _BY_STATUS.get(status, BitscaleError)(message, status=status, errors=errors)


def error_lines(errors: dict[str, Any], prefix: str = "") -> list[str]:
    """Flatten field errors into `field: message` lines; batch errors read `[3].final_loss: message`."""
    lines: list[str] = []
    for key, value in errors.items():
        name = f"{prefix}[{key}]" if key.isdigit() else (f"{prefix}.{key}" if prefix else key)
        if isinstance(value, dict):
            lines.extend(error_lines(value, name))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for position, item in enumerate(value):  # nested lists, e.g. evaluations
                lines.extend(error_lines(item, f"{name}[{position}]"))
        elif isinstance(value, list):
            lines.extend(f"{name}: {message}" for message in value)
        else:
            lines.append(f"{name}: {value}")
    return lines


def format_errors(errors: dict[str, Any], *, limit: int | None = None) -> str:
    """The field errors on one line, at most `limit` of them."""
    lines = error_lines(errors)
    shown = lines if limit is None else lines[:limit]
    more = len(lines) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more else "")
