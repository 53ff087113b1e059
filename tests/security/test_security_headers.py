"""Content-Security-Policy without 'unsafe-inline' scripts (a nonce per response),
Referrer-Policy and Permissions-Policy, on pages and the API; and in a real browser an
injected inline script is blocked while the pages' own scripts still run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from accounts.choices import Role
from tests.browser.conftest import chromium, page  # noqa: F401 - browser fixtures, for the last test
from tests.factories import make_user
from tests.security.members import page_member

PAGES = ["/", "/clusters/register/", "/clusters/create/", "/api/docs/", "/accounts/login/"]


def _directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture
def client() -> Client:
    return page_member("platform", Role.ADMIN)


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_pages_allow_only_their_own_and_nonced_scripts(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    csp = _directives(response["Content-Security-Policy"])
    scripts = csp["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert "*" not in scripts and "data:" not in scripts
    [nonce] = [s[len("'nonce-") : -1] for s in scripts if s.startswith("'nonce-")]
    assert len(nonce) >= 16
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    # every inline script carries this response's nonce; no inline event handlers
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or f'nonce="{nonce}"' in tag, tag
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html)
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_every_response_has_a_fresh_nonce_and_the_api_has_the_headers(client: Client) -> None:
    first = client.get("/")["Content-Security-Policy"]
    second = client.get("/")["Content-Security-Policy"]
    assert first != second
    api = client.get("/api/v1/clusters/")
    assert "script-src 'self' 'nonce-" in api["Content-Security-Policy"]
    assert api["Permissions-Policy"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_the_browser_injected_inline_script_is_blocked_and_pages_still_work(
    asgi_server: str,
    page: Any,  # noqa: F811
) -> None:
    # given a logged-in user on the register page
    make_user(username="ops")
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{asgi_server}/accounts/login/")
    page.get_by_label("User name").fill("ops")
    page.get_by_label("Password").fill("pw-ops")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Register your first cluster").wait_for()
    page.goto(f"{asgi_server}/clusters/register/")
    # then the nonced inline scripts ran: the theme is set, and the method switcher works
    assert page.evaluate("document.documentElement.dataset.theme") == "auto"
    page.check('input[name="method"][value="token"]')
    assert page.locator('.method[data-method="kubeconfig"]').first.is_hidden()
    assert violations == []
    # when markup with an inline script and a handler is injected (as unescaped HTML would be)
    page.evaluate(
        """() => {
        const holder = document.createElement("div");
        holder.innerHTML = '<img src="data:," onerror="window.pwned = 1">';
        document.body.appendChild(holder);
        const script = document.createElement("script");
        script.textContent = "window.pwned = 2";
        document.body.appendChild(script);
        }"""
    )
    page.wait_for_timeout(300)
    # then neither ran, and the browser reported the policy blocking them
    assert page.evaluate("window.pwned === undefined")
    assert violations
