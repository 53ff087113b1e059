"""Whether a websocket's user may still receive what it streams.

A socket is authorized once, at connect; the browser's session can end (logout, password
change, a deactivated user) and the user can leave a team while it stays open. Each live
view therefore re-checks (`session_problem`, plus the view's own visibility check) every
KEELSON_WS_AUTH_RECHECK_SECONDS, before a message when a check is due, and at once when
told: a logout or a membership change sends `auth.recheck` to the user's group.
"""

from __future__ import annotations

import logging
import time
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import transaction
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
RECHECK = {"type": "auth.recheck"}
# The session key where a single sign-on session keeps when it ends (accounts/oidc_session.py).
SSO_SESSION_EXPIRES = "oidc_expires_at"


def user_group(user_id: Any) -> str:
    """The group every socket of one user joins, to hear `auth.recheck`."""
    return f"user-{int(user_id)}"


def session_problem(scope: dict[str, Any]) -> int | None:
    """None while the socket's user is active and its session still logs that user in
    with the same password; else the close code. Refreshes `scope["user"]` so the view's
    own check sees current flags (superuser, active)."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return CLOSE_UNAUTHENTICATED
    fresh = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
    if fresh is None:
        return CLOSE_UNAUTHENTICATED
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if key:
        store = import_module(settings.SESSION_ENGINE).SessionStore(key)
        data = store.load()  # {} once the session was flushed (logout) or expired
        if data.get(SESSION_KEY) != str(fresh.pk):
            return CLOSE_UNAUTHENTICATED
        stored_hash = data.get(HASH_SESSION_KEY)
        if stored_hash is not None and not constant_time_compare(
            str(stored_hash), fresh.get_session_auth_hash()
        ):
            return CLOSE_UNAUTHENTICATED  # the password changed since this login
        expires = data.get(SSO_SESSION_EXPIRES)
        if expires is not None and float(expires) < time.time():
            return CLOSE_UNAUTHENTICATED  # a single sign-on past its ID token (accounts)
    scope["user"] = fresh
    return None


def _send(user_id: Any, ended_session: str | None = None) -> None:
    try:
        layer = get_channel_layer()
        if layer is not None:
            message = {**RECHECK, "ended_session": ended_session}
            async_to_sync(layer.group_send)(user_group(user_id), message)
    except Exception:
        # The periodic re-check still closes the socket; a Redis outage must not fail
        # the change that asked for it.
        logger.warning("could not ask user %s's sockets to re-check", user_id, exc_info=True)


def recheck_user_sockets_on_commit(user_id: Any) -> None:
    """After the current transaction commits, every socket of the user re-checks."""
    if user_id is not None:
        transaction.on_commit(lambda: _send(user_id))


def on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """`user_logged_out` receiver: the sockets of the ended session close. Sent before
    Django flushes the session, so the message names it rather than relying on the check."""
    if user is None or getattr(user, "pk", None) is None:
        return
    session = getattr(request, "session", None)
    ended = getattr(session, "session_key", None)
    transaction.on_commit(lambda: _send(user.pk, ended))
