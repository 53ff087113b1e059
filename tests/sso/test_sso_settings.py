"""Single sign-on settings fail loudly at start-up (a real `manage.py`), and the client
secret comes from a file without ever being printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.test_settings import _manage

ISSUER = "https://id.example.org/realms/main"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"KEELSON_OIDC_ISSUER": "http://id.example.org"}, "schemes https (got scheme 'http')"),
        ({"KEELSON_OIDC_ISSUER": ISSUER}, "KEELSON_OIDC_CLIENT_ID must be set"),
        ({"KEELSON_LOCAL_LOGIN": "off"}, "KEELSON_LOCAL_LOGIN=off needs KEELSON_OIDC_ISSUER"),
        ({"KEELSON_LOCAL_LOGIN": "sometimes"}, "KEELSON_LOCAL_LOGIN='sometimes' is not a boolean"),
        (
            {
                "KEELSON_OIDC_ISSUER": ISSUER,
                "KEELSON_OIDC_CLIENT_ID": "k",
                "KEELSON_OIDC_CLIENT_SECRET_FILE": "/nonexistent",
            },
            "KEELSON_OIDC_CLIENT_SECRET_FILE=/nonexistent: cannot read",
        ),
    ],
)
def test_bad_single_sign_on_settings_stop_start_up(overrides: dict[str, str], message: str) -> None:
    result = _manage("check", **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_client_secret_comes_from_a_file_and_is_never_printed(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("canary-client-secret-4242\n")
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.KEELSON_OIDC_ISSUER, len(s.KEELSON_OIDC_CLIENT_SECRET), s.KEELSON_LOCAL_LOGIN)",
        KEELSON_OIDC_ISSUER=ISSUER + "/",
        KEELSON_OIDC_CLIENT_ID="keelson",
        KEELSON_OIDC_CLIENT_SECRET_FILE=str(secret),
        KEELSON_LOCAL_LOGIN="off",
    )
    assert result.returncode == 0, result.stderr
    # The trailing slash is dropped (discovery must then name the issuer exactly).
    assert result.stdout.strip().splitlines()[-1].split() == [
        ISSUER,
        str(len("canary-client-secret-4242")),
        "False",
    ]
    assert "canary" not in result.stdout + result.stderr
