"""A unified diff between two versions of an application's manifests, for the application
page. Bounded so that one request never spends seconds in difflib: manifests may be up to
2 MB (applications.manifests.MAX_BYTES), and difflib's matching grows quadratically with
the lines that differ."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from applications.models import Application, ApplicationVersion

MAX_LINES = 5_000  # per side compared
MAX_SHOWN = 2_000  # diff lines shown


@dataclass(frozen=True)
class DiffLine:
    text: str
    kind: str  # "add", "remove", "hunk", "file" or "context"


@dataclass(frozen=True)
class VersionDiff:
    old: int
    new: int
    lines: list[DiffLine]
    problem: str = ""  # why there is no diff to show
    truncated: bool = False

    @property
    def identical(self) -> bool:
        return not self.problem and not self.lines


def _kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "remove"}.get(line[:1], "context")


def unified_diff(old_text: str, new_text: str, *, old: int, new: int) -> VersionDiff:
    """`diff -u` of two manifests texts (3 lines of context), lines classified for colour."""
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    if max(len(old_lines), len(new_lines)) > MAX_LINES:
        problem = f"These versions are too long to compare here (over {MAX_LINES} lines)."
        return VersionDiff(old=old, new=new, lines=[], problem=problem)
    raw = difflib.unified_diff(
        old_lines, new_lines, fromfile=f"version {old}", tofile=f"version {new}", lineterm=""
    )
    lines = [DiffLine(text=line, kind=_kind(line)) for line in raw]
    return VersionDiff(old=old, new=new, lines=lines[:MAX_SHOWN], truncated=len(lines) > MAX_SHOWN)


def versions_diff(*, application: Application, old: str, new: str) -> VersionDiff | None:
    """The diff the page's form asked for (`old`, `new` as typed: version numbers), None when
    nothing was asked; unknown or malformed numbers are a problem to show, not an error."""
    if not old and not new:
        return None
    if not (old.isdigit() and new.isdigit()):
        return VersionDiff(old=0, new=0, lines=[], problem="Choose two versions to compare.")
    numbers = (int(old), int(new))
    found = dict(
        ApplicationVersion.objects.filter(application=application, number__in=numbers).values_list(
            "number", "manifests"
        )
    )
    missing = [n for n in numbers if n not in found]
    if missing:
        problem = f"This application has no version {missing[0]}."
        return VersionDiff(old=numbers[0], new=numbers[1], lines=[], problem=problem)
    return unified_diff(found[numbers[0]], found[numbers[1]], old=numbers[0], new=numbers[1])
