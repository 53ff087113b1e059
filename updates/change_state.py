"""How a change kind's state is stored on a run's cluster row.

An empty `change_state` on a changing cluster means its start was never stored (a worker
died in between) and the engine starts it again; a change whose `start` returns an empty
state is stored with a marker instead, and gets its empty state back."""

from __future__ import annotations

from typing import Any

_STARTED = {"_started": True}


def stored_state(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state) if state else dict(_STARTED)


def loaded_state(state: dict[str, Any]) -> dict[str, Any]:
    return {} if state == _STARTED else state
