"""Template filters available in every template (registered as builtins in settings).

Timestamps: one format everywhere. The server writes the exact UTC time
(`2026-12-05 06:29:37 UTC`) into a `<time datetime=...>` element whose title keeps it;
`static/keelson/time.js` rewrites the text into the viewer's time zone with the zone
shown. `ago` is for places where recency matters ("3 minutes ago"), exact time on hover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from operations.models import Operation
from operations.views import target_link

register = template.Library()

UTC_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def _utc(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC)


def exact_utc(value: datetime) -> str:
    return _utc(value).strftime(UTC_FORMAT)


def iso_utc(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


def relative(value: datetime, now: datetime | None = None) -> str:
    """'just now', '5 minutes ago', 'in 2 hours' (the largest whole unit)."""
    delta = (now or timezone.now()) - _utc(value)
    future = delta < timedelta(0)
    seconds = abs(int(delta.total_seconds()))
    if seconds < 45:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size) if size == 60 else seconds // size
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"  # pragma: no cover - 45..59 s rounds to a minute above


@register.filter
def when(value: datetime | None, empty: str = "—") -> SafeString | str:
    """An exact time, localized in the browser; the UTC time stays on hover."""
    if not value:
        return empty
    text = exact_utc(value)
    return format_html(
        '<time datetime="{}" title="{}" data-format="exact">{}</time>', iso_utc(value), text, text
    )


@register.filter
def ago(value: datetime | None, empty: str = "never") -> SafeString | str:
    """A relative time ('5 minutes ago'), kept current in the browser; exact on hover."""
    if not value:
        return empty
    return format_html(
        '<time datetime="{}" title="{}" data-format="relative">{}</time>',
        iso_utc(value),
        exact_utc(value),
        relative(value),
    )


@register.filter
def money(value: Decimal | float | int | None, places: int = 2) -> str:
    """An amount with the deployment's currency code: '1,234.50 USD'."""
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-int(places)))
    return f"{amount:,} {settings.KEELSON_CURRENCY}"


@register.simple_tag
def currency() -> str:
    """The deployment's currency code, for headings of price columns."""
    return str(settings.KEELSON_CURRENCY)


@register.filter
def operation_target(operation: Operation) -> tuple[str, str] | None:
    """(url, what) of the page of what an operation acts on, or None."""
    return target_link(operation)
