"""Cursor pagination that cannot run unordered and stays stable while runs keep arriving."""

import math
from base64 import b64decode
from typing import Any
from urllib import parse

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import FloatField, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

# What DRF writes into a cursor: offset, reverse, position.
CURSOR_KEYS = frozenset({"o", "r", "p"})


class StrictCursorPagination(CursorPagination):
    """Cursor pages whose cursor, malformed or forged, is a 400 naming `cursor` (DRF answers 404 or fails)."""

    page_size_query_param = "page_size"
    invalid_cursor_message = "Invalid cursor; follow the next or previous link of a page."

    _position_field: Any = None

    def _invalid(self) -> ValidationError:
        return ValidationError({"cursor": [self.invalid_cursor_message]})

    def get_ordering(self, request: Request, queryset: Any, view: APIView) -> Any:
        ordering = super().get_ordering(request, queryset, view)
        try:
            self._position_field = queryset.model._meta.get_field(ordering[0].lstrip("-"))
        except (AttributeError, FieldDoesNotExist):
            self._position_field = None
        return ordering

    def decode_cursor(self, request: Request) -> Cursor | None:
        # DRF's decoding skips characters outside base64's alphabet, so `!!!!` decodes to an empty cursor (the
        # first page): only a cursor in base64 holding nothing but DRF's own keys, once each, is read.
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
        except (ValueError, UnicodeError):
            raise self._invalid() from None
        tokens = parse.parse_qs(text, keep_blank_values=True)
        if not set(tokens) <= CURSOR_KEYS or any(len(values) != 1 for values in tokens.values()):
            raise self._invalid()
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise self._invalid() from None
        if cursor is not None and cursor.position is not None and isinstance(self._position_field, FloatField):
            # NaN and the infinities compare with every number in PostgreSQL (NaN sorts above them all), so such
            # a position would silently give the first page. A position this class wrote is a finite float.
            try:
                finite = math.isfinite(float(cursor.position))
            except ValueError:
                finite = False
            if not finite:
                raise self._invalid()
        return cursor

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list[Any] | None:
        # A cursor is opaque but not signed: a forged one may decode to a position the ordering field cannot
        # hold (text for a number, a bad date), which fails when the page is read. Either way, a 400.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, DjangoValidationError):
            if not request.query_params.get(self.cursor_query_param):
                raise
            raise self._invalid() from None


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
