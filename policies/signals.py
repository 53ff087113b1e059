"""Policies' answers to what lower layers announce (connected in PoliciesConfig.ready)."""

from __future__ import annotations

from typing import Any

from accounts.models import Team
from policies.services.library import library_load


def give_library(sender: Any, team: Team, **kwargs: Any) -> None:
    """Every team starts with the bundled policy library, in inform mode (DESIGN.md)."""
    library_load(team=team)
