"""Single sign-on tests: a real OpenID Connect provider on loopback (tests/sso/provider.py)
answering Keelson's test client, whose origin is http://testserver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from tests.sso.provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    running_provider,
    sign_in_at_provider,
)


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(
        tmp_path_factory.mktemp("oidc"), app_base="http://testserver"
    ) as provider:
        yield provider


@pytest.fixture
def sso(oidc_provider: Provider, settings: Any) -> Provider:
    """Keelson configured for the provider (no users there yet)."""
    settings.KEELSON_OIDC_ISSUER = oidc_provider.issuer
    settings.KEELSON_OIDC_CLIENT_ID = CLIENT_ID
    settings.KEELSON_OIDC_CLIENT_SECRET = CLIENT_SECRET
    oidc_provider.set_users({})
    return oidc_provider


def provider_answer(
    client: Client, login: str, *, browser: requests.Session | None = None, next_url: str = ""
) -> str:
    """Start a sign-in with `client`, sign in at the provider as `login`; the callback
    path (with query) the provider sends the browser back to."""
    started = client.get("/accounts/oidc/login/" + (f"?next={next_url}" if next_url else ""))
    assert started.status_code == 302, started.content[:500]
    back = urlsplit(sign_in_at_provider(started["Location"], login, browser=browser))
    assert back.netloc == "testserver" and back.path == "/accounts/oidc/callback/", back
    return f"{back.path}?{back.query}"


def sign_in(client: Client, login: str, **kwargs: Any) -> Any:
    """A whole sign-in through the provider; Keelson's answer to the callback."""
    return client.get(provider_answer(client, login, **kwargs))
