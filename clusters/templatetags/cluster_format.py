from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clusters.choices import EolState
from clusters.display import shown_label
from clusters.eol import eol_of

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


_EOL_TEXT = {
    EolState.PAST: "past end of life ({})",
    EolState.SOON: "end of life {}",
    EolState.SUPPORTED: "supported until {}",
}


@register.simple_tag
def eol_badge(cluster: Any) -> SafeString:
    """The cluster's version end-of-life state as a badge, its date in the text."""
    state, end = eol_of(cluster.provider, cluster.kubernetes_version)
    text = _EOL_TEXT[state].format(end.isoformat()) if end is not None else "unknown"
    return format_html(
        '<span class="eol eol-{}" data-eol="{}" title="{}">{}</span>',
        state.value,
        state.value,
        state.label,
        text,
    )
