"""The real OpenID Connect provider of the single sign-on tests (tests/oidc/provider.mjs,
the certified `oidc-provider` npm package) and a driver of its sign-in pages."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
PROVIDER_DIR = REPO / "tests" / "oidc"
CLIENT_ID = "keelson"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"


@dataclass
class Provider:
    issuer: str
    users_file: Path

    def set_users(self, users: dict[str, dict[str, Any]]) -> None:
        """The provider's accounts and their claims (read again at every token)."""
        self.users_file.write_text(json.dumps(users))

    def set_groups(self, login: str, groups: list[str]) -> None:
        users = json.loads(self.users_file.read_text())
        users.setdefault(login, {})["groups"] = groups
        self.set_users(users)


@contextmanager
def running_provider(
    workdir: Path, *, app_base: str, port: int | None = None, id_token_ttl: int = 3600
) -> Iterator[Provider]:
    """Start the provider on loopback with a client whose redirect and post-logout URIs
    are on `app_base` (Keelson's origin), users from a file the test rewrites."""
    node = shutil.which("node")
    assert node, "Node.js is missing (the README lists it for the tests)"
    assert (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(), (
        "run `npm ci` in tests/oidc (scripts/test.sh does)"
    )
    port = port or free_port()
    users_file = workdir / "oidc-users.json"
    users_file.write_text("{}")
    config = {
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{app_base}/accounts/oidc/callback/"],
                "post_logout_redirect_uris": [f"{app_base}/accounts/login/"],
            }
        ],
        "users_file": str(users_file),
        "id_token_ttl": id_token_ttl,
    }
    config_file = workdir / "oidc-config.json"
    config_file.write_text(json.dumps(config))
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    log = (REPO / "test-artifacts" / "oidc-provider.log").open("ab")
    process = subprocess.Popen(
        [node, str(PROVIDER_DIR / "provider.mjs"), str(port), str(config_file)],
        cwd=PROVIDER_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "NODE_ENV": "development"},
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            assert process.poll() is None, "oidc-provider exited: test-artifacts/oidc-provider.log"
            try:
                if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError("oidc-provider did not start within 15 s")
        yield Provider(issuer=issuer, users_file=users_file)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def sign_in_at_provider(
    authorize_url: str, login: str, *, browser: requests.Session | None = None
) -> str:
    """Follow Keelson's redirect to the provider, sign in on its login page as `login`,
    and return the URL the provider sends the browser back to (Keelson's callback).
    `browser` keeps the provider's cookies (its session) between sign-ins."""
    session = browser or requests.Session()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    response = session.get(authorize_url, allow_redirects=False, timeout=10)
    posted = False
    for _ in range(10):
        location = response.headers.get("location")
        if location is None:
            match = _FORM_ACTION.search(response.text)
            assert match and not posted, (
                f"no sign-in form: {response.status_code} {response.text[:300]}"
            )
            action = html.unescape(match.group(1))
            response = session.post(
                action if action.startswith("http") else origin + action,
                data={"prompt": "login", "login": login, "password": "any"},
                allow_redirects=False,
                timeout=10,
            )
            posted = True
            continue
        target = location if location.startswith("http") else origin + location
        if not target.startswith(origin):
            return target
        response = session.get(target, allow_redirects=False, timeout=10)
    raise AssertionError("the provider never sent the browser back")
