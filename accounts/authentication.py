"""DRF authentication with Keelson's API tokens (`Authorization: Bearer kls_...`; the
`Token` keyword of DRF's authtoken is accepted too, so existing clients keep working).

The token's scope travels with the request's user (`token_scope`): the role selectors cap
the user's role in every team by it, a read token may only use safe methods
(`TokenScopeAllows`, a default permission, so the refusal is audited under the user's
name), and only an admin-scoped token carries the user's superuser/staff status.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.choices import TokenScope
from accounts.tokens import api_token_authenticate

KEYWORDS = (b"bearer", b"token")


def _refuse_save(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("A user loaded through a scoped API token is read-only.")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.") from None
        token = api_token_authenticate(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        scope = TokenScope(token.scope)
        user: Any = token.user
        user.token_scope = scope
        if scope != TokenScope.ADMIN:
            # Superuser powers are admin powers. This instance is this request's alone and
            # must never be saved with the flags cleared.
            user.is_superuser = False
            user.is_staff = False
            user.save = _refuse_save
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class TokenScopeAllows(BasePermission):
    """A read-scoped token may only use safe methods. (`view` is untyped: importing DRF's
    views here would import this module again through DRF's settings.)"""

    message = "This token has the read scope: it allows only GET, HEAD and OPTIONS."

    def has_permission(self, request: Request, view: Any) -> bool:
        scope = getattr(request.user, "token_scope", None)
        return scope != TokenScope.READ or request.method in SAFE_METHODS
