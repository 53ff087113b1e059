"""Work above applications that moves an application's clusters to a version one at a time
(an update run of kind `application_version`) holds the application while it is under way.

Meanwhile reconcile leaves it alone (a reschedule would roll every chosen cluster to the
last decision's version and undo the per-cluster versions the run set), and no rollout,
eviction or deletion starts. The layers above answer `application_holders` (sent with
`application=`): each receiver returns a sentence naming what holds it, or None. Drift
correction keeps each cluster at its own work's version, so it needs no hold; it simply
waits with the rest of reconcile until the hold ends.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.dispatch import Signal

from applications.models import Application

application_holders = Signal()


def application_hold(application: Application) -> str | None:
    """What holds the application now, in a sentence; None when nothing does."""
    for _, answer in application_holders.send(sender=Application, application=application):
        if answer:
            return str(answer)
    return None


def refuse_while_held(application: Application) -> None:
    """For work that would change the application's clusters as a whole."""
    if (held := application_hold(application)) is not None:
        raise ValidationError(held)
