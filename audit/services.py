"""Writing the audit log. Secrets never reach it: detail keys that name one are redacted."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection, models, transaction
from django.http import HttpRequest

from audit.choices import Outcome
from audit.models import AuditEvent
from core.counters import counter_claim

logger = logging.getLogger(__name__)
REDACTED = "[redacted]"
# Anonymous refusals are aggregated (see `_anonymous_row_due`): per window, one row per
# address and path, at most this many rows per address, and this many in all.
ANONYMOUS_ROWS_PER_ADDRESS = 20
ANONYMOUS_ROWS_PER_WINDOW = 600
_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|kubeconfig|credential|private|api[-_]?key|authorization|cert|ca[-_]?data)",
    re.IGNORECASE,
)


def redact(value: Any) -> Any:
    """Replace values under secret-looking keys, recursively."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


# Who acts when no user does: a service identity ("git-repository:payments/fleet") that
# events recorded without a user carry as their actor name (`audit_identity`).
_identity: ContextVar[str] = ContextVar("audit_identity", default="")


@contextmanager
def audit_identity(name: str) -> Iterator[None]:
    """Within the block, events recorded without a user name `name` as their actor: the
    services a GitOps sync calls audit as the repository, not as an anonymous system."""
    token = _identity.set(name[:150])
    try:
        yield
    finally:
        _identity.reset(token)


def _client_addr(request: HttpRequest) -> str | None:
    addr = request.META.get("REMOTE_ADDR")
    return addr if isinstance(addr, str) and addr else None


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    team: Any = None,
    outcome: Outcome = Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    save: bool = True,
) -> AuditEvent:
    """Append one event. Inside a transaction it commits or rolls back with the change.
    With `save=False` the event is only built, for `audit_records` to append in bulk."""
    user = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent(
        actor_id=user.pk if user is not None else None,
        actor_name=user.get_username() if user is not None else _identity.get(),
        action=action,
        outcome=outcome,
        team=team,
        detail=redact(detail or {}),
    )
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_repr = str(target)[:200]
    if request is not None:
        event.remote_addr = _client_addr(request)
        event.request_method = request.method or ""
        event.request_path = request.path[:300]
    if save:
        event.save()
    return event


def audit_records(events: list[AuditEvent]) -> None:
    """Append events built with `audit_record(save=False)` in one insert."""
    AuditEvent.objects.bulk_create(events, batch_size=500)


def _anonymous_row_due(request: HttpRequest) -> dict[str, Any] | None:
    """Whether an anonymous refusal gets its own row; None when it is only counted.

    Anyone can send unauthenticated requests, so each one writing a row would let anyone
    fill the audit table. Within a window of KEELSON_AUDIT_DENIED_WINDOW seconds the first
    refusal from an address to a path is recorded and the rest are counted in Redis (one
    INCR); the first row of the next window says how many the previous one had
    (`previous_window_count`). Rows per address and in all are capped per window too, so
    varying the path does not flood either."""
    window = int(settings.KEELSON_AUDIT_DENIED_WINDOW)
    slot = int(time.time() // window)
    addr = _client_addr(request) or "-"
    path = request.path[:300]
    ttl = window * 3
    try:
        if counter_claim(f"audit-anon:{addr}:{path}:{slot}", timeout=ttl) != 1:
            return None
        if (
            counter_claim(f"audit-anon-addr:{addr}:{slot}", timeout=ttl)
            > ANONYMOUS_ROWS_PER_ADDRESS
        ):
            return None
        if counter_claim(f"audit-anon-all:{slot}", timeout=ttl) > ANONYMOUS_ROWS_PER_WINDOW:
            return None
        previous = cache.get(f"audit-anon:{addr}:{path}:{slot - 1}")
    except Exception:  # Redis unreachable: record rather than lose the refusal
        logger.warning("could not count an anonymous refusal", exc_info=True)
        return {}
    extra: dict[str, Any] = {"window_seconds": window}
    if previous:
        extra["previous_window_count"] = int(previous)
    return extra


def audit_record_denied(
    *, request: HttpRequest, reason: str, target: models.Model | None = None
) -> AuditEvent | None:
    """Record a refused request (requests run outside a transaction: ATOMIC_REQUESTS is off,
    so the record commits at once). Refusals of anonymous requests are aggregated
    (`_anonymous_row_due`): None when this one was only counted."""
    user = getattr(request, "user", None)
    extra: dict[str, Any] = {}
    if user is None or not user.is_authenticated:
        due = _anonymous_row_due(request)
        if due is None:
            return None
        extra = due
    return audit_record(
        actor=user,
        action="request.denied",
        target=target,
        outcome=Outcome.DENIED,
        detail={"reason": reason, **extra},
        request=request,
    )


@transaction.atomic
def audit_purge_before(*, cutoff: datetime) -> int:
    """Delete events older than `cutoff` (retention). The only allowed delete."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL keelson.audit_purge = 'on'")
    deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
