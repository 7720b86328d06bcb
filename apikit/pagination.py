"""Cursor pagination that cannot run unordered and stays stable while runs keep arriving."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class CreatedCursorPagination(CursorPagination):
    """Newest first by default; `?page_size=` up to 1000; `?ordering=` from the view's ordering_fields."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 1000


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with `id` appended as a tie-breaker, so runs of equal size never swap between pages."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> list[str] | None:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not ordering or ordering[-1].lstrip("-") == "id":
            return ordering or None
        return [*ordering, "-id" if ordering[0].startswith("-") else "id"]
