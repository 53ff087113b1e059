"""The encryption key ring for secrets at rest (cluster credentials, agent tokens).

``KEELSON_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys. The first one
encrypts; every one of them decrypts, so a key is rotated by putting a new key first,
re-encrypting (``encryption_rotate``), then dropping the old key.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from core.errors import ImproperEnvironment


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any key of the key ring."""


def parse_key_ring(raw_keys: list[str]) -> list[Fernet]:
    """Build Fernet instances, failing loudly (without echoing a key) on a malformed one."""
    if not raw_keys:
        raise ImproperEnvironment("KEELSON_ENCRYPTION_KEYS must hold at least one key")
    ring = []
    for position, key in enumerate(raw_keys, start=1):
        try:
            ring.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise ImproperEnvironment(
                f"KEELSON_ENCRYPTION_KEYS: key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return ring


@cache
def _key_ring() -> MultiFernet:
    return MultiFernet(parse_key_ring(list(settings.KEELSON_ENCRYPTION_KEYS)))


def reset_key_ring() -> None:
    """Forget the cached key ring (tests and key rotation re-read settings)."""
    _key_ring.cache_clear()


def encrypt(plaintext: str) -> str:
    return _key_ring().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _key_ring().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "stored secret cannot be decrypted with the configured KEELSON_ENCRYPTION_KEYS"
        ) from None


def reencrypt(token: str) -> str:
    """Re-encrypt a token under the primary key (no-op in content, new ciphertext)."""
    try:
        return _key_ring().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "stored secret cannot be decrypted with the configured KEELSON_ENCRYPTION_KEYS"
        ) from None


def key_fingerprint(raw_key: str) -> str:
    """A short public identifier of one key (HMAC of a fixed label under the key): it tells
    two keys apart and reveals nothing of the key itself (backup manifests record it)."""
    digest = hmac.new(raw_key.strip().encode(), b"keelson key fingerprint v1", hashlib.sha256)
    return digest.hexdigest()[:16]


def key_ring_fingerprints() -> list[str]:
    """The fingerprints of KEELSON_ENCRYPTION_KEYS, in the ring's order."""
    return [key_fingerprint(key) for key in settings.KEELSON_ENCRYPTION_KEYS]
