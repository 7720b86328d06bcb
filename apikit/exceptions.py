"""The domain errors every app's services raise; pure Python, so services import no HTTP.

A service says what went wrong (the input is invalid, the thing is not there, the state does not allow it)
and names the field in `errors`; apikit.errors answers each kind with its status code and the
{"errors": ...} body. Apps subclass these (runs.services.BatchInvalid, planner.errors.PlanInvalid, ...).
"""

from typing import Any


class DomainError(Exception):
    """Bad input: the request names what it asks for, but it cannot be done as asked (answered 400)."""

    def __init__(self, errors: dict[str, Any] | str) -> None:
        super().__init__(str(errors))
        self.errors: dict[str, Any] = {"detail": [errors]} if isinstance(errors, str) else errors


class NotFound(DomainError):
    """The thing asked about does not exist for this team, or nothing is there yet (answered 404)."""


class Conflict(DomainError):
    """The request is valid but the current state cannot answer it yet, e.g. no succeeded fit (answered 409)."""
