"""Team scoping of every /api/v1/ endpoint over team data: one mixin that subclasses cannot bypass."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from django.db.models import QuerySet
from rest_framework.permissions import IsAuthenticated

from apikit.permissions import KeyMayWrite

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass


class Principal(Protocol):
    """What the API key authentication puts in request.user: the key's team and whether it may write."""

    team: Any
    read_only: bool


class TeamScopedMixin:
    """Base of every /api/v1/ endpoint over team data; rows of other teams do not exist for it (404).

    Subclasses narrow the team's rows with `narrow_queryset()`; overriding get_queryset() is refused at
    class creation, so the scoping cannot be bypassed by accident.
    """

    permission_classes: "Sequence[_PermissionClass]" = (IsAuthenticated, KeyMayWrite)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in vars(cls):  # scoping is a security boundary: extend narrow_queryset()
            raise TypeError(f"{cls.__name__} must not override get_queryset()")

    @property
    def team(self) -> Any:
        """The key's team (the principal that the API key authentication put on the request)."""
        principal: Principal = self.request.user  # type: ignore[attr-defined]
        return principal.team

    def get_queryset(self) -> QuerySet[Any]:
        return self.narrow_queryset(super().get_queryset().filter(team=self.team))  # type: ignore[misc]

    def narrow_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset
