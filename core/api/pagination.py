"""The API's pagination: DRF's limit/offset with a ceiling on both numbers."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination

# PostgreSQL's OFFSET is a bigint: a larger number would be a database error (a 500).
MAX_OFFSET = 2**62


class KeelsonPagination(LimitOffsetPagination):
    """`?limit=` is capped at KEELSON_API_MAX_PAGE_SIZE (a larger one is served at the cap,
    as DRF's max_limit does); `?offset=` past any real row count is served as empty."""

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return int(settings.KEELSON_API_MAX_PAGE_SIZE)

    def get_offset(self, request: Any) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
