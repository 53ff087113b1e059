from __future__ import annotations

from django import template

from clusters.display import shown_label

register = template.Library()


@register.filter
def cores(millis: int | float | None) -> str:
    """Millicores as cores: 3500 -> '3.5'."""
    if millis is None:
        return "—"
    value = float(millis) / 1000
    return f"{value:.0f}" if value.is_integer() else f"{value:.2f}".rstrip("0")


@register.filter
def gib(size: int | float | None) -> str:
    if size is None:
        return "—"
    return f"{float(size) / 2**30:.1f} GiB"


@register.filter
def status_label(value: str) -> str:
    """A shown status's label, Provisioning and Pending included (clusters/display.py)."""
    return shown_label(value)
