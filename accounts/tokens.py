"""Personal API tokens: created, rotated and revoked by their user, every change audited.

A token's secret is `kls_` + 256 random bits. Only its SHA-256 is stored (a fast hash is
right here: the secret is high-entropy, so there is nothing to brute-force, and lookup by
digest is one indexed query). The secret is returned once, by the call that makes it, and
never again; the audit and the API show only its first characters (`prefix`).

Legacy DRF `authtoken` keys (plaintext in their table) are converted on first use into an
admin-scoped ApiToken with the default lifetime and their plaintext row is deleted; the
migration that added this module converted the keys that existed then.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken

from accounts.choices import TokenScope
from accounts.models import ApiToken
from audit.services import audit_record

SECRET_PREFIX = "kls_"  # noqa: S105 (a marker that makes leaked tokens recognizable)
SHOWN_PREFIX_LENGTH = len(SECRET_PREFIX) + 6
# last_used_at is written at most this often per token, not once per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    """A token and its secret, as returned once by create and rotate."""

    token: ApiToken
    secret: str


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lifetime(days: int | None) -> timedelta:
    maximum = settings.KEELSON_API_TOKEN_MAX_DAYS
    if days is None:
        return timedelta(days=settings.KEELSON_API_TOKEN_DEFAULT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= maximum:
        raise ValidationError({"expires_in_days": f"Choose 1 to {maximum} days."})
    return timedelta(days=days)


def _scope(scope: str) -> TokenScope:
    if scope not in TokenScope.values:
        raise ValidationError({"scope": f"Choose one of {', '.join(TokenScope.values)}."})
    return TokenScope(scope)


def _issue(
    *, user: AbstractBaseUser, name: str, scope: TokenScope, lifetime: timedelta
) -> IssuedToken:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.pk,
        name=name,
        scope=scope,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        token_hash=token_digest(secret),
        expires_at=timezone.now() + lifetime,
    )
    token.full_clean(exclude=["user"])
    token.save()
    return IssuedToken(token=token, secret=secret)


def _audit_detail(token: ApiToken) -> dict[str, str]:
    return {
        "name": token.name,
        "scope": token.scope,
        "prefix": token.prefix,
        "expires_at": token.expires_at.isoformat(),
    }


@transaction.atomic
def api_token_create(
    *, user: AbstractBaseUser, name: str, scope: str, expires_in_days: int | None = None
) -> IssuedToken:
    """A new token for `user`, by `user` (tokens are personal: nobody issues one for another)."""
    name = str(name).strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": "Give the token a name of 1 to 100 characters."})
    issued = _issue(user=user, name=name, scope=_scope(scope), lifetime=_lifetime(expires_in_days))
    audit_record(
        actor=user, action="token.create", target=issued.token, detail=_audit_detail(issued.token)
    )
    return issued


def _own_live(user: AbstractBaseUser, token: ApiToken) -> ApiToken:
    locked = ApiToken.objects.select_for_update().filter(pk=token.pk, user_id=user.pk).first()
    if locked is None:
        raise ValidationError("No such token.")
    if locked.revoked_at is not None:
        raise ValidationError("This token is revoked.")
    return locked


@transaction.atomic
def api_token_rotate(*, user: AbstractBaseUser, token: ApiToken) -> IssuedToken:
    """Revoke `token` and issue a new secret with the same name, scope and lifetime."""
    old = _own_live(user, token)
    lifetime = min(
        max(old.expires_at - old.created_at, timedelta(days=1)),
        timedelta(days=settings.KEELSON_API_TOKEN_MAX_DAYS),
    )
    old.revoked_at = timezone.now()
    old.save(update_fields=["revoked_at"])
    issued = _issue(user=user, name=old.name, scope=TokenScope(old.scope), lifetime=lifetime)
    audit_record(
        actor=user,
        action="token.rotate",
        target=issued.token,
        detail={**_audit_detail(issued.token), "replaces": old.prefix},
    )
    return issued


@transaction.atomic
def api_token_revoke(*, user: AbstractBaseUser, token: ApiToken) -> ApiToken:
    revoked = _own_live(user, token)
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])
    audit_record(actor=user, action="token.revoke", target=revoked, detail=_audit_detail(revoked))
    return revoked


@transaction.atomic
def api_tokens_revoke_all(*, user: AbstractBaseUser, reason: str) -> int:
    """Revoke every live token of `user` (after a password change, when asked)."""
    count = ApiToken.objects.filter(user_id=user.pk, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    LegacyToken.objects.filter(user_id=user.pk).delete()
    if count:
        audit_record(
            actor=user, action="token.revoke_all", detail={"count": count, "reason": reason}
        )
    return count


def _from_legacy(secret: str) -> ApiToken | None:
    """Convert a DRF authtoken key into a hashed token (once) and delete its plaintext row."""
    legacy = LegacyToken.objects.filter(key=secret).first()
    if legacy is None:
        return None
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user_id=legacy.user_id,
                name="legacy DRF token",
                scope=TokenScope.ADMIN,
                prefix=secret[:6],
                token_hash=token_digest(secret),
                expires_at=timezone.now() + timedelta(days=settings.KEELSON_API_TOKEN_DEFAULT_DAYS),
            )
            LegacyToken.objects.filter(key=secret).delete()
            audit_record(
                actor=legacy.user,
                action="token.create",
                target=token,
                detail={**_audit_detail(token), "converted": "legacy DRF token"},
            )
    except IntegrityError:
        # Another request converted it first.
        return ApiToken.objects.filter(token_hash=token_digest(secret)).first()
    return token


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The live token whose secret this is (with its user loaded), or None: unknown,
    revoked, expired, or its user deactivated."""
    if not secret or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=token_digest(secret)).first()
    if token is None and not secret.startswith(SECRET_PREFIX):
        token = _from_legacy(secret)
        if token is not None:
            token = ApiToken.objects.select_related("user").get(pk=token.pk)
    now = timezone.now()
    if (
        token is None
        or token.revoked_at is not None
        or token.expires_at <= now
        or not token.user.is_active
    ):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional: concurrent requests of the same token write once per minute.
        ApiToken.objects.filter(
            Q(last_used_at=None) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION), pk=token.pk
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
