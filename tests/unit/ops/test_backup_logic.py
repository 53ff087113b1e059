"""The pure parts of backup/restore (operations/backup.py): tool choice, connection
parameters, and what a restore refuses before it touches anything."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.crypto import key_fingerprint
from operations.backup import (
    BackupError,
    build_manifest,
    check_restorable,
    choose_tools,
    connection_params,
    secret_key_warning,
)

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
KNOWN = {("clusters", "0001_initial"), ("clusters", "0002_more"), ("audit", "0001_initial")}


def _manifest(keys: list[str], heads: dict[str, list[str]] | None = None) -> dict[str, object]:
    return build_manifest(
        version="0.1.0",
        heads=heads if heads is not None else {"clusters": ["0002_more"]},
        key_fingerprints=[key_fingerprint(k) for k in keys],
        secret_key_fingerprint=key_fingerprint("s" * 50),
        created_at=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        server_version="15.20",
        tables=3,
    )


def test_a_fingerprint_tells_keys_apart_and_does_not_contain_the_key() -> None:
    # given two keys
    # then each has a stable 16-hex fingerprint that is neither the key nor a piece of it
    assert key_fingerprint(KEY_A) == key_fingerprint(KEY_A + "\n")
    assert key_fingerprint(KEY_A) != key_fingerprint(KEY_B)
    assert len(key_fingerprint(KEY_A)) == 16
    assert key_fingerprint(KEY_A) not in KEY_A
    manifest = _manifest([KEY_A])
    assert KEY_A not in repr(manifest)
    assert manifest["created_at"] == "2026-12-05T12:00:00+00:00"


def test_a_restore_with_the_same_keys_or_a_ring_holding_them_passes() -> None:
    manifest = _manifest([KEY_A])
    check_restorable(
        manifest, key_fingerprints=[key_fingerprint(KEY_A)], known_migrations=KNOWN, version="x"
    )
    # a new primary key put before the old one (a rotation begun after the backup)
    check_restorable(
        manifest,
        key_fingerprints=[key_fingerprint(KEY_B), key_fingerprint(KEY_A)],
        known_migrations=KNOWN,
        version="x",
    )


def test_other_keys_are_refused_naming_the_setting_and_the_missing_key() -> None:
    manifest = _manifest([KEY_A, KEY_B])
    with pytest.raises(BackupError) as refused:
        check_restorable(
            manifest, key_fingerprints=[key_fingerprint(KEY_A)], known_migrations=KNOWN, version="x"
        )
    message = str(refused.value)
    assert "KEELSON_ENCRYPTION_KEYS lacks key #2" in message
    assert key_fingerprint(KEY_B) in message
    assert "Nothing was changed" in message
    assert KEY_B not in message


def test_a_backup_of_a_newer_release_is_refused() -> None:
    manifest = _manifest([KEY_A], heads={"clusters": ["0003_future"], "audit": ["0001_initial"]})
    with pytest.raises(BackupError, match=r"does not know: clusters\.0003_future"):
        check_restorable(
            manifest, key_fingerprints=[key_fingerprint(KEY_A)], known_migrations=KNOWN, version="x"
        )


def test_another_format_is_refused() -> None:
    with pytest.raises(BackupError, match="not a Keelson backup"):
        check_restorable(
            {"format": "zip"}, key_fingerprints=[], known_migrations=KNOWN, version="x"
        )


def test_a_changed_secret_key_only_warns() -> None:
    manifest = _manifest([KEY_A])
    assert secret_key_warning(manifest, key_fingerprint("s" * 50)) is None
    assert "SECRET_KEY differs" in (secret_key_warning(manifest, key_fingerprint("t" * 50)) or "")


def test_tools_of_the_servers_major_first_else_the_oldest_newer_one() -> None:
    found = [(Path("/a/18"), 18), (Path("/a/15"), 15), (Path("/a/16"), 16)]
    assert choose_tools(found, 15) == (Path("/a/15"), 15)
    assert choose_tools(found, 14) == (Path("/a/15"), 15)
    assert choose_tools(found, 17) == (Path("/a/18"), 18)
    with pytest.raises(BackupError, match="PostgreSQL 19 or newer"):
        choose_tools(found, 19)


def test_the_password_goes_to_the_environment_never_the_command_line() -> None:
    conninfo, env = connection_params(
        {
            "NAME": "keelson",
            "USER": "app",
            "PASSWORD": "s3cr'et pw",
            "HOST": "/run/pg sock",
            "PORT": "5433",
            "OPTIONS": {"sslmode": "require"},
        }
    )
    assert conninfo == "dbname=keelson host='/run/pg sock' port=5433 user=app sslmode=require"
    assert env == {"PGPASSWORD": "s3cr'et pw"}
    assert "s3cr" not in conninfo
