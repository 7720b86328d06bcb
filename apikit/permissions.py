"""Permissions of the API."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


class KeyMayWrite(BasePermission):
    """Any key may read; writing needs a read-write key. Assumes ApiKeyAuthentication ran."""

    message = "This API key is read-only."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or not getattr(request.user, "read_only", True)
