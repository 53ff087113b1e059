"""Colour contrast of the theme (WCAG 2.1 AA), computed from static/keelson/app.css.

Relative luminance and contrast ratio as WCAG 2.1 defines them (Understanding SC 1.4.3):
L = 0.2126 R + 0.7152 G + 0.0722 B over linearized sRGB channels, ratio
(L1 + 0.05) / (L2 + 0.05). AA asks 4.5:1 for text (the status badges, links and buttons
here are normal-size text) and 3:1 for the boundaries of controls.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[3] / "static" / "keelson" / "app.css").read_text()

TEXT = 4.5
# (foreground, background) pairs the stylesheet draws text with
TEXT_PAIRS = [
    ("fg", "bg"),
    ("fg", "card"),
    ("muted", "bg"),
    ("muted", "card"),
    ("accent", "bg"),  # links
    ("accent", "card"),
    ("on-accent", "accent"),  # primary buttons, pressed chart controls
    ("ok", "bg"),
    ("ok", "card"),  # Ready, succeeded
    ("warn", "bg"),
    ("warn", "card"),  # Degraded, canceled, stale figures
    ("bad", "bg"),
    ("bad", "card"),  # Unreachable, failed, errors
    ("on-bad", "bad"),  # danger buttons
    ("on-warn", "warn"),  # the "reconnecting" banner
]


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def ratio(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _variables(selector_pattern: str) -> dict[str, str]:
    block = re.search(selector_pattern + r"\s*\{([^}]*)\}", CSS)
    assert block, selector_pattern
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", block.group(1)))


LIGHT = _variables(r"(?m)^:root")
DARK = _variables(r':root\[data-theme="dark"\]')
AUTO_DARK = _variables(r':root\[data-theme="auto"\]')


def test_the_formula_matches_known_values() -> None:
    assert round(ratio("#000000", "#ffffff"), 2) == 21.0
    assert round(ratio("#777777", "#ffffff"), 2) == 4.48  # the classic just-fails grey
    assert round(ratio("#767676", "#ffffff"), 2) == 4.54  # and the darkest passing one


def test_automatic_dark_theme_is_the_dark_theme() -> None:
    assert AUTO_DARK == DARK


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("fg", "bg"), TEXT_PAIRS)
def test_text_contrast_meets_aa(theme: str, fg: str, bg: str) -> None:
    colours = {**LIGHT, **(DARK if theme == "dark" else {})}
    value = ratio(colours[fg], colours[bg])
    assert value >= TEXT, f"{theme}: --{fg} on --{bg} is {value:.2f}:1"


def test_no_hard_coded_text_colour_on_theme_backgrounds() -> None:
    # white or black text must come from --on-* variables, which change with the theme
    assert not re.search(r"color:\s*#(fff|ffffff|000|000000)\b", CSS)
