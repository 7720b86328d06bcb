"""The one base of every app's domain errors; light enough for services to import (no DRF views)."""

from typing import Any

from rest_framework import status


class DomainError(Exception):
    """Base of every app's domain errors: the status code and the {"errors": ...} body the API answers with.

    Services raise subclasses (runs.services.BatchInvalid, planner.services.PlanInvalid, ...); the exception
    handler below maps them without importing any app.
    """

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, errors: dict[str, Any] | str) -> None:
        super().__init__(str(errors))
        self.errors: dict[str, Any] = {"detail": [errors]} if isinstance(errors, str) else errors
