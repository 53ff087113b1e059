"""Settings come from the environment and fail loudly on bad values (a real start-up of
`manage.py check`; the readers alone: tests/unit/fleet/test_env.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-like-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-QWERTY",
    "KEELSON_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWVuY3J5cHRpb24ta2V5LTAxMjM0NTY=",
    "ALLOWED_HOSTS": "keelson.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/keelson",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
}
MANAGED = [
    *PRODUCTION,
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
]


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in MANAGED}
    env.update(PRODUCTION)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_production_settings_pass_check_deploy_with_no_warnings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("SECRET_KEY", "", "SECRET_KEY must be set"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 50 characters"),
        ("KEELSON_ENCRYPTION_KEYS", "not-a-key", "key #1 is not a valid Fernet key"),
        ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS must be set"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be a postgres:// URL"),
        ("REDIS_URL", "http://x", "REDIS_URL must be a URL with one of the schemes"),
        ("CELERY_BROKER_URL", "kafka://x", "CELERY_BROKER_URL must be a URL"),
        ("DATABASE_CONN_MAX_AGE", "ten", "DATABASE_CONN_MAX_AGE='ten' is not an integer"),
        (
            "KEELSON_CLUSTER_READ_TIMEOUT",
            "ten",
            "KEELSON_CLUSTER_READ_TIMEOUT='ten' is not a number",
        ),
    ],
)
def test_a_bad_environment_value_stops_start_up_with_a_clear_message(
    name: str, value: str, message: str
) -> None:
    result = _manage("check", **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_a_bad_key_is_not_echoed() -> None:
    result = _manage(
        "check",
        KEELSON_ENCRYPTION_KEYS="dGVzdC1vbmx5LWVuY3J5cHRpb24ta2V5LTAxMjM0NTY=,topsecretcanary",
    )
    assert result.returncode != 0
    assert "key #2" in result.stderr
    assert "topsecretcanary" not in result.stderr


def test_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ZXCVBNM\n")
    result = _manage("check", SECRET_KEY="", SECRET_KEY_FILE=str(secret_file))
    assert result.returncode == 0, result.stderr
