"""What accounts announce to the layers above it (which it must not import)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside team_create's transaction with `team`: policies gives it the library.
team_created = Signal()
