"""OpenID Connect with the provider at KEELSON_OIDC_ISSUER, through Authlib.

Authlib builds the authorization request (state, nonce, PKCE S256 code challenge), sends
the code with the client's credentials and verifier to the token endpoint, and validates
the ID token's claims (issuer, audience, expiry, nonce, at_hash); joserfc checks its
signature with the provider's published keys. Keelson adds: the discovery document and
keys, cached (KEELSON_OIDC_DISCOVERY_TTL) and re-read when a token names an unknown key;
clear refusals (`SignInRefused`, safe to show: never a token or secret in them).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.django_client import DjangoOAuth2App
from authlib.integrations.django_client.integration import DjangoIntegration
from authlib.oidc.core import CodeIDToken
from django.conf import settings
from django.core.cache import cache
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

logger = logging.getLogger(__name__)
# Seconds of clock difference with the provider tolerated on exp/iat.
LEEWAY = 60


class SignInRefused(Exception):
    """A single sign-on that must not log anyone in; the message is shown to the user."""


def oidc_enabled() -> bool:
    return bool(settings.KEELSON_OIDC_ISSUER)


def _cache_key(what: str) -> str:
    return f"oidc-{what}:{settings.KEELSON_OIDC_ISSUER}"


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=settings.KEELSON_OIDC_TIMEOUT)
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as error:
        logger.warning("identity provider request to %s failed: %s", url, error)
        raise SignInRefused(
            "The identity provider cannot be reached right now; try again in a minute."
        ) from None
    if not isinstance(data, dict):
        raise SignInRefused("The identity provider answered with something unexpected.")
    return data


def discovery(*, refresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document (`/.well-known/openid-configuration`), cached.
    Its `issuer` must be the configured one exactly (OpenID Connect Discovery 1.0, 4.3)."""
    key = _cache_key("discovery")
    document = None if refresh else cache.get(key)
    if document is None:
        issuer = settings.KEELSON_OIDC_ISSUER
        document = _get_json(f"{issuer}/.well-known/openid-configuration")
        if document.get("issuer") != issuer:
            logger.error("discovery document of %s names issuer %r", issuer, document.get("issuer"))
            raise SignInRefused(
                "The identity provider's discovery document names another issuer than "
                "KEELSON_OIDC_ISSUER: single sign-on is misconfigured."
            )
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not document.get(field):
                raise SignInRefused(f"The identity provider publishes no {field}.")
        cache.set(key, document, settings.KEELSON_OIDC_DISCOVERY_TTL)
    return dict(document)


def signing_keys(*, refresh: bool = False) -> dict[str, Any]:
    """The provider's JSON Web Key Set, cached like the discovery document."""
    key = _cache_key("jwks")
    keys = None if refresh else cache.get(key)
    if keys is None:
        keys = _get_json(discovery()["jwks_uri"])
        cache.set(key, keys, settings.KEELSON_OIDC_DISCOVERY_TTL)
    return dict(keys)


def client() -> DjangoOAuth2App:
    """An Authlib client for the provider, from the cached discovery document."""
    return DjangoOAuth2App(
        DjangoIntegration("keelson"),
        name="keelson",
        client_id=settings.KEELSON_OIDC_CLIENT_ID,
        client_secret=settings.KEELSON_OIDC_CLIENT_SECRET or None,
        client_kwargs={
            "scope": settings.KEELSON_OIDC_SCOPES,
            "code_challenge_method": "S256",
            "timeout": settings.KEELSON_OIDC_TIMEOUT,
        },
        **discovery(),
    )


_CLAIM_REFUSALS = {
    "iss": "The ID token was issued by another identity provider (wrong issuer).",
    "aud": "The ID token was issued for another application (wrong audience).",
    "azp": "The ID token was issued for another application (wrong authorized party).",
    "nonce": "The ID token does not belong to this sign-in (nonce mismatch): start again.",
    "at_hash": "The ID token does not match its access token (at_hash mismatch).",
    "iat": "The ID token claims to be issued in the future (check the clocks).",
    "nbf": "The ID token is not valid yet (check the clocks).",
}


def id_token_claims(
    id_token: str,
    *,
    nonce: str,
    access_token: str | None,
    issuer: str,
    client_id: str,
    keys: dict[str, Any],
    algorithms: list[str] | None = None,
) -> dict[str, Any]:
    """The claims of an ID token from the code flow once its signature (with `keys`), issuer,
    audience, expiry, nonce and at_hash are checked; else `SignInRefused` saying which
    check failed. `InvalidKeyIdError` passes through: the caller re-reads the keys."""
    try:
        token = jwt.decode(
            id_token,
            KeySet.import_key_set(keys),  # type: ignore[arg-type]
            registry=JWSRegistry(algorithms=algorithms or ["RS256"], strict_check_header=False),
        )
    except InvalidKeyIdError:
        raise
    except BadSignatureError:
        raise SignInRefused(
            "The ID token's signature does not match the identity provider's keys "
            "(forged or altered token)."
        ) from None
    except (JoseError, ValueError, TypeError):
        raise SignInRefused(
            "The ID token is malformed or signed with a refused algorithm."
        ) from None
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token:
        params["access_token"] = access_token
    # The audience is checked here: Authlib's ID token class checks it only through azp.
    options: dict[str, Any] = {
        "iss": {"essential": True, "values": [issuer]},
        "aud": {"essential": True, "values": [client_id]},
    }
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(leeway=LEEWAY)
    except ExpiredTokenError:
        raise SignInRefused("The ID token has expired: sign in again.") from None
    except MissingClaimError as error:
        raise SignInRefused(f"The ID token lacks the {error.claim!r} claim.") from None
    except InvalidClaimError as error:
        refusal = _CLAIM_REFUSALS.get(
            error.claim, f"The ID token's {error.claim!r} claim is invalid."
        )
        raise SignInRefused(refusal) from None
    except ClaimError:
        raise SignInRefused("The ID token's claims are invalid.") from None
    return dict(claims)


def verified_claims(id_token: str, *, nonce: str, access_token: str | None) -> dict[str, Any]:
    """`id_token_claims` with the configured provider's keys (re-read once when the token
    names a key they lack: the provider rotated its keys)."""
    document = discovery()
    arguments: dict[str, Any] = {
        "nonce": nonce,
        "access_token": access_token,
        "issuer": settings.KEELSON_OIDC_ISSUER,
        "client_id": settings.KEELSON_OIDC_CLIENT_ID,
        "algorithms": document.get("id_token_signing_alg_values_supported") or ["RS256"],
    }
    try:
        return id_token_claims(id_token, keys=signing_keys(), **arguments)
    except InvalidKeyIdError:
        pass
    try:
        return id_token_claims(id_token, keys=signing_keys(refresh=True), **arguments)
    except InvalidKeyIdError:
        raise SignInRefused(
            "The ID token is signed with a key the identity provider does not publish."
        ) from None


def exchange_code(*, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
    """The token endpoint's answer to the authorization code (with the PKCE verifier)."""
    try:
        token: dict[str, Any] = client().fetch_access_token(
            redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
        )
    except (AuthlibBaseError, requests.RequestException) as error:
        logger.warning("token request to the identity provider failed: %s", error)
        raise SignInRefused(
            "The identity provider did not accept the sign-in code (expired or already "
            "used): start again."
        ) from None
    if not token.get("id_token"):
        raise SignInRefused("The identity provider sent no ID token (is 'openid' in the scopes?).")
    return token


def userinfo(access_token: str) -> dict[str, Any]:
    """The userinfo endpoint's claims ({} when the provider has none)."""
    endpoint = discovery().get("userinfo_endpoint")
    if not endpoint or not access_token:
        return {}
    try:
        response = requests.get(
            endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.KEELSON_OIDC_TIMEOUT,
        )
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as error:
        logger.warning("userinfo request failed: %s", error)
        raise SignInRefused("The identity provider did not answer the userinfo request.") from None
    return data if isinstance(data, dict) else {}
