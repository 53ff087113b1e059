"""Silences: mute a team's alerts by label matchers until an expiry, with a comment;
created and expired in one validated, audited call."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from alerts.matchers import MatcherError, parse_matchers
from alerts.models import Silence
from alerts.services.lifecycle import silences_changed
from audit.services import audit_record

MAX_DURATION = timedelta(days=90)


@transaction.atomic
def silence_create(
    *,
    actor: AbstractBaseUser,
    team: Team,
    matchers: list[str],
    comment: str,
    ends_at: datetime,
    starts_at: datetime | None = None,
) -> Silence:
    """The caller checked that `actor` operates `team`."""
    now = timezone.now()
    starts_at = starts_at or now
    errors: dict[str, str] = {}
    try:
        parsed = parse_matchers(matchers)
    except MatcherError as error:
        errors["matchers"] = str(error)
        parsed = []
    comment = (comment or "").strip()
    if not comment:
        errors["comment"] = "Say why (who is on it, the ticket)."
    elif len(comment) > 500:
        errors["comment"] = "At most 500 characters."
    if ends_at <= max(starts_at, now):
        errors["ends_at"] = "The silence must end in the future and after it starts."
    elif ends_at - starts_at > MAX_DURATION:
        errors["ends_at"] = f"A silence lasts at most {MAX_DURATION.days} days."
    if errors:
        raise ValidationError(errors)
    silence = Silence.objects.create(
        team=team,
        matchers=[str(m) for m in parsed],
        comment=comment,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by_id=actor.pk,
    )
    audit_record(
        actor=actor,
        action="silence.create",
        target=silence,
        team=team,
        detail={"matchers": silence.matchers, "ends_at": ends_at.isoformat(), "comment": comment},
    )
    silences_changed(team_id=team.pk, now=now)
    return silence


@transaction.atomic
def silence_expire(*, actor: AbstractBaseUser, silence: Silence) -> Silence:
    """End a silence now; what it muted and still fires is notified at once."""
    now = timezone.now()
    locked = Silence.objects.select_for_update().get(pk=silence.pk)
    if locked.ends_at <= now:
        raise ValidationError("This silence has already ended.")
    locked.ends_at = max(now, locked.starts_at + timedelta(microseconds=1))
    locked.save(update_fields=["ends_at"])
    audit_record(actor=actor, action="silence.expire", target=locked, team=locked.team)
    silences_changed(team_id=locked.team_id, now=locked.ends_at)
    return locked
