"""The plan of a sync: what to create, change (with a field diff), prune or orphan, from
what the repository declares and what it owns in the database. Pure."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from gitops.documents import APPLY_ORDER, Desired


class Action:
    CREATE = "create"
    CHANGE = "change"
    UNCHANGED = "unchanged"
    PRUNE = "prune"
    ORPHAN = "orphan"
    # An object made outside Git, taken over by a repository with `adopt` (then changed
    # as declared: `diff`).
    ADOPT = "adopt"


@dataclass
class Change:
    action: str
    kind: str
    name: str
    file: str = ""
    line: int = 0
    diff: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "diff": self.diff,
        }


def _text_diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{name} (now)",
        tofile=f"{name} (in git)",
    )
    return "".join(lines)


def field_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """{field: {"old": ..., "new": ...}} for every field that differs; a multi-line text
    (manifests) as {"diff": unified diff} instead."""
    changed: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, str) and isinstance(after, str) and "\n" in before + after:
            changed[key] = {"diff": _text_diff(before, after, key)}
        else:
            changed[key] = {"old": before, "new": after}
    return changed


def make_plan(
    desired: list[Desired],
    owned: dict[tuple[str, str], dict[str, Any]],
    *,
    prune: bool,
    adoptable: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> list[Change]:
    """Changes in the order they apply: creates, adoptions and changes (applications
    first), then removals (policies first: one may target where an application runs).
    `adoptable`: the state of declared objects that exist unowned, to take over."""
    changes: list[Change] = []
    declared = set()
    for item in desired:
        key = (item.kind, item.name)
        declared.add(key)
        current = owned.get(key)
        if current is None and adoptable and key in adoptable:
            diff = field_diff(adoptable[key], item.state)
            changes.append(Change(Action.ADOPT, item.kind, item.name, item.file, item.line, diff))
            continue
        if current is None:
            changes.append(Change(Action.CREATE, item.kind, item.name, item.file, item.line))
            continue
        diff = field_diff(current, item.state)
        action = Action.CHANGE if diff else Action.UNCHANGED
        changes.append(Change(action, item.kind, item.name, item.file, item.line, diff))
    gone = sorted(
        (key for key in owned if key not in declared),
        key=lambda key: (-APPLY_ORDER.get(key[0], 0), key[1]),
    )
    removal = Action.PRUNE if prune else Action.ORPHAN
    changes += [Change(removal, kind, name) for kind, name in gone]
    return changes


def plan_summary(changes: list[Change]) -> dict[str, int]:
    actions = (Action.CREATE, Action.ADOPT, Action.CHANGE, Action.UNCHANGED, Action.PRUNE)
    counts = {a: 0 for a in (*actions, Action.ORPHAN)}
    for change in changes:
        counts[change.action] += 1
    return counts
