"""Entry points of the notifications package."""

from __future__ import annotations

from notifications.types import Notification


def dispatch(notification: Notification) -> int:
    """Queue one delivery of `notification` per matching enabled channel of its team and
    return how many were queued. Sending happens on a worker, with retries."""
    raise NotImplementedError("channels land with issue 24's notifications branch")
