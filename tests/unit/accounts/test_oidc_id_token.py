"""The ID token checks of single sign-on (accounts.oidc.id_token_claims), on tokens signed
here with a test key: a forged signature, an expired token, another issuer, another
audience or another sign-in's nonce are each refused with a message saying which."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet, RSAKey

from accounts.oidc import SignInRefused, id_token_claims

ISSUER = "https://id.example.org"
CLIENT = "keelson"
NONCE = "n-0S6_WzA2Mj"
ACCESS = "an-access-token"


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def provider_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})


@pytest.fixture(scope="module")
def published(provider_key: RSAKey) -> dict[str, Any]:
    """The provider's JWKS: its public key only."""
    return dict(KeySet([provider_key]).as_dict(private=False))


def _token(key: RSAKey, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "at_hash": _at_hash(ACCESS),
        "groups": ["ops"],
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def _check(token: str, keys: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "nonce": NONCE,
        "access_token": ACCESS,
        "issuer": ISSUER,
        "client_id": CLIENT,
        "keys": keys,
    }
    arguments.update(overrides)
    return id_token_claims(token, **arguments)


def test_a_valid_token_gives_its_claims(provider_key: RSAKey, published: dict[str, Any]) -> None:
    claims = _check(_token(provider_key), published)
    assert claims["sub"] == "alice"
    assert claims["groups"] == ["ops"]


def test_a_token_signed_with_another_key_under_the_same_kid_is_forged(
    published: dict[str, Any],
) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(SignInRefused, match="signature does not match"):
        _check(_token(forger), published)


def test_an_altered_payload_breaks_the_signature(
    provider_key: RSAKey, published: dict[str, Any]
) -> None:
    header, payload, signature = _token(provider_key).split(".")
    other = _token(provider_key, sub="mallory", groups=["admins"]).split(".")[1]
    assert other != payload
    with pytest.raises(SignInRefused, match="forged or altered"):
        _check(f"{header}.{other}.{signature}", published)


def test_an_unsigned_token_is_refused(published: dict[str, Any]) -> None:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    unsigned = part(b'{"alg":"none"}') + "." + part(b'{"iss":"' + ISSUER.encode() + b'"}') + "."
    with pytest.raises(SignInRefused, match="malformed or signed with a refused algorithm"):
        _check(unsigned, published)


def test_an_expired_token_is_refused(provider_key: RSAKey, published: dict[str, Any]) -> None:
    past = int(time.time()) - 3600
    with pytest.raises(SignInRefused, match="has expired"):
        _check(_token(provider_key, iat=past - 300, exp=past), published)


def test_another_issuer_is_refused(provider_key: RSAKey, published: dict[str, Any]) -> None:
    with pytest.raises(SignInRefused, match="another identity provider"):
        _check(_token(provider_key, iss="https://evil.example.org"), published)


def test_another_audience_is_refused(provider_key: RSAKey, published: dict[str, Any]) -> None:
    with pytest.raises(SignInRefused, match="another application"):
        _check(_token(provider_key, aud="someone-else"), published)


def test_another_sign_ins_nonce_is_refused(provider_key: RSAKey, published: dict[str, Any]) -> None:
    with pytest.raises(SignInRefused, match="nonce mismatch"):
        _check(_token(provider_key, nonce="a-replayed-nonce"), published)
    with pytest.raises(SignInRefused, match="lacks the 'nonce' claim"):
        _check(_token(provider_key, nonce=None), published)


def test_an_access_token_of_another_sign_in_is_refused(
    provider_key: RSAKey, published: dict[str, Any]
) -> None:
    with pytest.raises(SignInRefused, match="at_hash"):
        _check(_token(provider_key), published, access_token="another-access-token")


def test_a_key_the_provider_does_not_publish_asks_for_fresh_keys(
    published: dict[str, Any],
) -> None:
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    with pytest.raises(InvalidKeyIdError):
        _check(_token(rotated), published)


def test_an_audience_list_without_keelson_is_refused_even_naming_it_as_azp(
    provider_key: RSAKey, published: dict[str, Any]
) -> None:
    token = _token(provider_key, aud=["someone-else", "another"], azp=CLIENT)
    with pytest.raises(SignInRefused, match="wrong audience"):
        _check(token, published)
    assert _check(_token(provider_key, aud=[CLIENT, "another"], azp=CLIENT), published)
