"""Cursor pagination that cannot run unordered and stays stable while runs keep arriving."""

from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Newest first by default; `?page_size=` up to 1000; `?ordering=` from the view's ordering_fields."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 1000
