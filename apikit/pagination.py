"""Cursor pagination that cannot run unordered and stays stable while runs keep arriving."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class StrictCursorPagination(CursorPagination):
    """Cursor pages whose cursor, malformed or forged, is a 400 naming `cursor` (DRF answers 404 or fails)."""

    page_size_query_param = "page_size"
    invalid_cursor_message = "Invalid cursor; follow the next or previous link of a page."

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from None

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list[Any] | None:
        # A cursor is opaque but not signed: a forged one decodes to a position the ordering field cannot
        # hold (text for a number, a bad date), which fails when the page is read. Either way, a 400.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, DjangoValidationError):
            if not request.query_params.get(self.cursor_query_param):
                raise
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from None


class CreatedCursorPagination(StrictCursorPagination):
    """Newest first by default; `?page_size=` up to 1000; `?ordering=` from the view's ordering_fields."""

    ordering = ("-created_at", "-id")
    max_page_size = 1000


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with `id` appended as a tie-breaker, so runs of equal size never swap between pages."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> list[str] | None:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not ordering or ordering[-1].lstrip("-") == "id":
            return ordering or None
        return [*ordering, "-id" if ordering[0].startswith("-") else "id"]
