"""Issue 25: single sign-on through a real OpenID Connect provider (oidc-provider on
loopback): groups become team roles at each sign-in, a group removed at the provider
takes the role away at the next one (live sockets close, API tokens lose it), bad answers
are refused with a clear message, local login can be turned off, logout ends the
provider's session too."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.choices import MembershipSource, Role
from accounts.models import ExternalIdentity, GroupMapping, Membership
from accounts.tokens import api_token_create
from audit.models import AuditEvent
from fleet.asgi import application
from tests.factories import add_member, make_cluster, make_team, make_user
from tests.sso.conftest import provider_answer, sign_in
from tests.sso.provider import Provider, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


def _rules() -> tuple[Any, Any]:
    payments, ops = make_team(name="payments"), make_team(name="ops")
    GroupMapping.objects.create(group="dev", team=payments, role=Role.VIEWER)
    GroupMapping.objects.create(group="payments-admins", team=payments, role=Role.ADMIN)
    GroupMapping.objects.create(group="sre", team=ops, role=Role.OPERATOR)
    return payments, ops


def _roles(user: Any) -> dict[str, tuple[str, str]]:
    return {
        m.team.name: (m.role, m.source)
        for m in Membership.objects.filter(user=user).select_related("team")
    }


def test_sign_in_maps_groups_to_teams_and_roles(sso: Provider) -> None:
    _rules()
    sso.set_users(
        {"alice": {"email": "alice@example.org", "groups": ["dev", "payments-admins", "sre", "x"]}}
    )
    client = Client()
    answer = sign_in(client, "alice", next_url="/clusters/")

    assert answer.status_code == 302 and answer["Location"] == "/clusters/"
    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "alice@example.org"
    assert not alice.has_usable_password()  # the local form never signs her in
    assert ExternalIdentity.objects.get(user=alice).subject == "alice"
    # Two rules reach payments: the higher role wins.
    assert _roles(alice) == {"payments": ("admin", "idp"), "ops": ("operator", "idp")}
    assert client.get("/clusters/").status_code == 200
    logins = AuditEvent.objects.filter(action="account.sso_login", actor_name="alice")
    assert logins.get().detail["added"] == {"payments": "admin", "ops": "operator"}


def test_the_same_provider_account_is_the_same_user_and_never_a_local_one(sso: Provider) -> None:
    local = make_user(username="alice")  # a local account with the provider's user name
    sso.set_users({"alice": {"groups": []}})
    sign_in(Client(), "alice")
    sign_in(Client(), "alice")
    identity = ExternalIdentity.objects.get(subject="alice")
    assert identity.user != local
    assert identity.user.username.startswith("alice-")
    assert get_user_model().objects.filter(username__startswith="alice").count() == 2


def test_a_group_removed_at_the_provider_removes_the_role_and_closes_the_socket(
    sso: Provider,
) -> None:
    _, ops = _rules()
    make_cluster(team=ops, name="eu-prod")
    sso.set_users({"bob": {"groups": ["sre"]}})
    first = Client()
    sign_in(first, "bob")
    bob = get_user_model().objects.get(username="bob")
    assert _roles(bob) == {"ops": ("operator", "idp")}
    token = api_token_create(user=bob, name="ci", scope="write", expires_in_days=None).secret
    api = Client(headers={"authorization": f"Bearer {token}"})
    assert api.get("/api/v1/clusters/eu-prod/").status_code == 200
    headers = [
        (b"cookie", f"sessionid={first.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost"),
    ]
    sso.set_groups("bob", ["dev"])  # sre removed at the provider, dev added

    async def scenario() -> int | None:
        socket = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await socket.connect())[0]
        await database_sync_to_async(sign_in)(Client(), "bob")  # the next sign-in
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if await socket.receive_nothing(timeout=0.2, interval=0.05):
                continue
            output = await socket.receive_output(timeout=1)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))
        return None

    assert asyncio.run(scenario()) == 4403
    assert _roles(bob) == {"payments": ("viewer", "idp")}
    assert api.get("/api/v1/clusters/eu-prod/").status_code == 404
    removed = AuditEvent.objects.get(action="team.member_remove", team=ops)
    assert removed.detail == {"user": "bob", "source": "idp"}


def test_manual_memberships_stay_and_mapped_ones_cannot_be_edited_by_hand(
    sso: Provider, admin_client: Client
) -> None:
    payments, _ = _rules()
    lab = make_team(name="lab")  # no rule: mapping is off for it
    sso.set_users({"carol": {"groups": ["dev"]}})
    sign_in(Client(), "carol")
    carol = get_user_model().objects.get(username="carol")
    add_member(lab, carol, Role.OPERATOR)

    sso.set_groups("carol", [])
    sign_in(Client(), "carol")
    assert _roles(carol) == {"lab": ("operator", "local")}

    sso.set_groups("carol", ["dev"])
    sign_in(Client(), "carol")
    changed = admin_client.patch(
        "/api/v1/teams/payments/members/carol/", {"role": "admin"}, content_type="application/json"
    )
    assert changed.status_code == 400
    assert "identity provider" in str(changed.json())
    assert admin_client.delete("/api/v1/teams/payments/members/carol/").status_code == 400
    added = admin_client.post(
        "/api/v1/teams/payments/members/",
        {"username": "carol", "role": "admin"},
        content_type="application/json",
    )
    assert added.status_code == 400
    assert Membership.objects.get(team=payments, user=carol).role == Role.VIEWER
    # The team without rules is edited by hand as before.
    assert (
        admin_client.patch(
            "/api/v1/teams/lab/members/carol/", {"role": "viewer"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert Membership.objects.get(team=lab, user=carol).source == MembershipSource.LOCAL


def test_a_wrong_or_reused_state_is_refused(sso: Provider) -> None:
    sso.set_users({"dave": {"groups": []}})
    client = Client()
    callback = provider_answer(client, "dave")
    query = parse_qs(urlsplit(callback).query)
    forged = client.get("/accounts/oidc/callback/", {"code": query["code"][0], "state": "forged"})
    assert forged.status_code == 400
    assert "does not match a sign-in started in this browser" in forged.content.decode()
    assert "_auth_user_id" not in client.session

    assert client.get(callback).status_code == 302  # the real answer still works once
    client.logout()
    replayed = client.get(callback)
    assert replayed.status_code == 400 and "unknown or reused state" in replayed.content.decode()


def test_an_answer_started_in_another_browser_is_refused(sso: Provider) -> None:
    sso.set_users({"erin": {"groups": []}})
    victim, attacker = Client(), Client()
    callback = provider_answer(attacker, "erin")
    answer = victim.get(callback)
    assert answer.status_code == 400
    assert "_auth_user_id" not in victim.session


def test_a_provider_error_is_shown(sso: Provider) -> None:
    client = Client()
    started = client.get("/accounts/oidc/login/")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    answer = client.get("/accounts/oidc/callback/", {"state": state, "error": "access_denied"})
    assert answer.status_code == 400
    assert "refused the sign-in (access_denied)" in answer.content.decode()


def test_a_code_for_another_client_is_refused(sso: Provider, settings: Any) -> None:
    """The token endpoint refuses the code (it was issued to the real client and PKCE
    verifier): nothing is signed in."""
    sso.set_users({"frank": {"groups": []}})
    client = Client()
    callback = provider_answer(client, "frank")
    settings.KEELSON_OIDC_CLIENT_SECRET = "not-the-secret"
    answer = client.get(callback)
    assert answer.status_code == 400
    assert "did not accept the sign-in code" in answer.content.decode()
    assert "_auth_user_id" not in client.session


def test_local_login_turned_off_refuses_the_form(sso: Provider, settings: Any) -> None:
    settings.KEELSON_LOCAL_LOGIN = False
    make_user(username="breakglass")
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert 'id="sso-login"' in page and 'name="password"' not in page
    refused = client.post(
        "/accounts/login/", {"username": "breakglass", "password": "pw-breakglass"}
    )
    assert refused.status_code == 403
    assert "turned off here: use single sign-on" in refused.content.decode()
    assert "_auth_user_id" not in client.session

    settings.KEELSON_LOCAL_LOGIN = True  # the break-glass account works when it is on
    assert (
        client.post(
            "/accounts/login/", {"username": "breakglass", "password": "pw-breakglass"}
        ).status_code
        == 302
    )
    assert "_auth_user_id" in client.session


def test_logout_ends_the_providers_session_too(sso: Provider) -> None:
    sso.set_users({"gina": {"groups": []}})
    client, browser = Client(), requests.Session()
    sign_in(client, "gina", browser=browser)
    answer = client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session
    target = urlsplit(answer["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{sso.issuer}/session/end"
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert query["client_id"] == ["keelson"] and query["id_token_hint"]
    # The provider accepts it: its confirmation page, then back to Keelson's login page.
    confirm = browser.get(answer["Location"], timeout=10)
    assert confirm.status_code == 200 and "logout" in confirm.text.lower()


def test_local_logout_stays_here(sso: Provider) -> None:
    client = Client()
    client.force_login(make_user())
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"


def test_a_session_past_its_id_token_signs_in_again_at_the_provider(sso: Provider) -> None:
    payments, _ = _rules()
    sso.set_users({"hana": {"groups": ["dev"]}})
    client, browser = Client(), requests.Session()
    sign_in(client, "hana", browser=browser)
    session = client.session
    session["oidc_expires_at"] = time.time() - 1
    session.save()
    sso.set_groups("hana", ["payments-admins"])

    again = client.get("/clusters/?team=payments")
    assert again.status_code == 302
    assert again["Location"].startswith("/accounts/oidc/login/?next=")
    assert "_auth_user_id" not in client.session
    # The provider's session still lasts: no form this time, straight back to Keelson.
    started = client.get(again["Location"])
    back = urlsplit(sign_in_at_provider(started["Location"], "unused", browser=browser))
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/clusters/?team=payments"
    hana = get_user_model().objects.get(username="hana")
    assert Membership.objects.get(team=payments, user=hana).role == Role.ADMIN


def test_discovery_is_cached_and_must_name_the_configured_issuer(
    sso: Provider, settings: Any
) -> None:
    from django.core.cache import cache

    sso.set_users({"ivan": {"groups": []}})
    sign_in(Client(), "ivan")
    assert cache.get(f"oidc-discovery:{sso.issuer}")["issuer"] == sso.issuer
    assert cache.get(f"oidc-jwks:{sso.issuer}")["keys"]

    # The same provider reached under another name: its document names its own issuer.
    settings.KEELSON_OIDC_ISSUER = sso.issuer.replace("127.0.0.1", "localhost")
    refused = Client().get("/accounts/oidc/login/")
    assert refused.status_code == 503
    assert "names another issuer" in refused.content.decode()

    settings.KEELSON_OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    down = Client().get("/accounts/oidc/login/")
    assert down.status_code == 503 and "cannot be reached" in down.content.decode()


def test_a_live_view_closes_when_the_single_sign_on_session_ends(
    sso: Provider, settings: Any
) -> None:
    settings.KEELSON_WS_AUTH_RECHECK_SECONDS = 1
    _, ops = _rules()
    make_cluster(team=ops, name="eu-prod")
    sso.set_users({"jane": {"groups": ["sre"]}})
    client = Client()
    sign_in(client, "jane")
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost"),
    ]

    def expire() -> None:
        session = client.session
        session["oidc_expires_at"] = time.time() - 1
        session.save()

    async def scenario() -> int | None:
        socket = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await socket.connect())[0]
        await database_sync_to_async(expire)()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            if await socket.receive_nothing(timeout=0.2, interval=0.05):
                continue
            output = await socket.receive_output(timeout=1)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))
        return None

    assert asyncio.run(scenario()) == 4401


def test_tokens_and_the_client_secret_appear_nowhere(
    sso: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.sso.provider import CLIENT_SECRET

    _rules()
    sso.set_users({"kim": {"groups": ["dev"]}})
    client = Client()
    with caplog.at_level("DEBUG"):
        sign_in(client, "kim")
        id_token = client.session["oidc_id_token"]
        pages = [client.get(path).content.decode() for path in ("/", "/accounts/teams/payments/")]
        pages.append(client.get("/accounts/oidc/callback/?state=x&code=y").content.decode())
    audit = " ".join(str(event.detail) for event in AuditEvent.objects.all())
    for text in (caplog.text, audit, *pages):
        assert CLIENT_SECRET not in text
        assert id_token not in text
        assert id_token.split(".")[1] not in text  # not even the claims part


def test_sign_in_starts_are_limited_per_address(sso: Provider) -> None:
    from accounts.oidc_views import STARTS_PER_MINUTE

    client = Client()
    answers = [
        client.get("/accounts/oidc/login/").status_code for _ in range(STARTS_PER_MINUTE + 1)
    ]
    assert answers == [302] * STARTS_PER_MINUTE + [429]
    assert "Too many sign-ins started" in client.get("/accounts/oidc/login/").content.decode()
    # One browser keeps only its last few unfinished sign-ins.
    keys = list(client.session.keys())
    assert sum(key.startswith("oidc-state:") for key in keys) == 5
