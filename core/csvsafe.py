"""CSV files that spreadsheets open as data, never as formulas ("CSV injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets, and may run commands or send data away when the
file is opened. As OWASP recommends, such a text cell is written with a single quote in
front (shown as text; the quote is visible, the value otherwise unchanged). Numbers are
written as numbers: a negative amount stays a number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Stream(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralize(value: Any) -> Any:
    """`value`, with a quote in front if it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose rows pass through `neutralize`."""

    def __init__(self, stream: _Stream) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralize(value) for value in row])
