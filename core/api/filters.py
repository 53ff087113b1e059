"""Filters shared by the API's filter sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone


def as_utc(value: datetime) -> datetime:
    """Aware and in UTC. Python accepts UTC offsets up to ±23:59 and PostgreSQL only to
    ±15:59, so a far offset given by a client must never reach a query as it is."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if isinstance(value, datetime):
            value = as_utc(value)
        filtered: QuerySet[Any] = super().filter(qs, value)
        return filtered
