"""Single sign-on pages: start the sign-in at the provider, take its answer, log out.

The callback's refusals (stale or foreign `state`, a provider error, a token that fails a
check) show the login page with the reason and status 400; nobody is signed in, and the
refusal is audited. Tokens never reach a page, a log line or the audit log.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login, logout
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.login import login_context
from accounts.oidc import (
    SignInRefused,
    client,
    discovery,
    exchange_code,
    oidc_enabled,
    userinfo,
    verified_claims,
)
from accounts.oidc_session import SESSION_EXPIRES
from accounts.sso import sso_sign_in
from audit.services import audit_record_denied
from core.counters import counter_claim

logger = logging.getLogger(__name__)
STATE_PREFIX = "oidc-state:"
# Session keys of a single sign-on session.
SESSION_ID_TOKEN = "oidc_id_token"  # noqa: S105 (a session key)
# Sign-ins started and not finished that one session keeps (several tabs).
MAX_PENDING = 5
# Sign-ins one client address may start per minute.
STARTS_PER_MINUTE = 30
BACKEND = "django.contrib.auth.backends.ModelBackend"


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _refused(request: HttpRequest, reason: str, *, status: int = 400) -> HttpResponse:
    # Anonymous refusals are aggregated per address and path (no audit flood).
    audit_record_denied(request=request, reason=f"single sign-on refused: {reason}")
    return render(
        request,
        "registration/login.html",
        {**login_context(request), "sso_error": reason},
        status=status,
    )


@never_cache
@require_GET
def sso_login(request: HttpRequest) -> HttpResponse:
    """Send the browser to the provider's authorization endpoint (code flow, PKCE S256)."""
    if not oidc_enabled():
        return _refused(request, "Single sign-on is not configured here.", status=404)
    address = request.META.get("REMOTE_ADDR", "")
    if counter_claim(f"sso-starts:{address}", timeout=60) > STARTS_PER_MINUTE:
        # Each start stores a session: anyone could otherwise fill the session table.
        return _refused(request, "Too many sign-ins started from here: wait a minute.", status=429)
    redirect_uri = request.build_absolute_uri(reverse("accounts:oidc-callback"))
    try:
        started = client().create_authorization_url(redirect_uri)
    except SignInRefused as refusal:
        return _refused(request, str(refusal), status=503)
    stored = list(request.session.keys())
    pending = sorted(
        (key for key in stored if key.startswith(STATE_PREFIX)),
        key=lambda key: request.session[key].get("at", 0),
    )
    for key in pending[: max(0, len(pending) - MAX_PENDING + 1)]:
        del request.session[key]
    request.session[STATE_PREFIX + started["state"]] = {
        "nonce": started["nonce"],
        "code_verifier": started["code_verifier"],
        "redirect_uri": redirect_uri,
        "next": _safe_next(request, str(request.GET.get("next", ""))),
        "at": time.time(),
    }
    return HttpResponseRedirect(started["url"])


def _claims(request: HttpRequest, pending: dict[str, Any]) -> dict[str, Any]:
    code = str(request.GET.get("code", ""))
    if not code:
        raise SignInRefused("The identity provider sent no authorization code.")
    token = exchange_code(
        code=code, code_verifier=pending["code_verifier"], redirect_uri=pending["redirect_uri"]
    )
    claims = verified_claims(
        token["id_token"], nonce=pending["nonce"], access_token=token.get("access_token")
    )
    extra = userinfo(str(token.get("access_token") or ""))
    if extra:
        if extra.get("sub") != claims.get("sub"):
            raise SignInRefused("The userinfo answer is about another user than the ID token.")
        # The ID token's checked claims win; userinfo adds what it lacks (groups, often).
        claims = {**extra, **claims}
    claims["_id_token"] = token["id_token"]
    return claims


@never_cache
@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    """The provider's answer: check `state`, exchange the code, check the ID token, sign
    the user in with the group mapping applied."""
    if not oidc_enabled():
        return _refused(request, "Single sign-on is not configured here.", status=404)
    state = str(request.GET.get("state", ""))
    pending = request.session.pop(STATE_PREFIX + state, None) if state else None
    if pending is None:
        return _refused(
            request,
            "This sign-in answer does not match a sign-in started in this browser (unknown "
            "or reused state): start again.",
        )
    if request.GET.get("error"):
        error = str(request.GET.get("error"))[:100]
        return _refused(request, f"The identity provider refused the sign-in ({error}).")
    try:
        claims = _claims(request, pending)
        id_token = claims.pop("_id_token")
        user, _ = sso_sign_in(
            issuer=settings.KEELSON_OIDC_ISSUER,
            claims=claims,
            groups_claim=settings.KEELSON_OIDC_GROUPS_CLAIM,
            username_claim=settings.KEELSON_OIDC_USERNAME_CLAIM,
            request=request,
        )
    except SignInRefused as refusal:
        return _refused(request, str(refusal))
    except ValidationError as error:
        return _refused(request, " ".join(error.messages))
    login(request, user, backend=BACKEND)
    lasts = max(int(claims.get("exp", 0)) - int(time.time()), 0)
    lasts = max(lasts, settings.KEELSON_OIDC_SESSION_SECONDS)
    request.session[SESSION_ID_TOKEN] = id_token
    request.session[SESSION_EXPIRES] = time.time() + lasts
    return HttpResponseRedirect(pending["next"])


def end_session_url(request: HttpRequest, id_token: str) -> str | None:
    """The provider's end-session URL for this ID token, back to the login page after;
    None when the provider offers none (or cannot be reached)."""
    try:
        endpoint = discovery().get("end_session_endpoint")
    except SignInRefused:
        return None
    if not endpoint:
        return None
    params = {
        "id_token_hint": id_token,
        "client_id": settings.KEELSON_OIDC_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


@never_cache
@require_POST
def sso_logout(request: HttpRequest) -> HttpResponse:
    """End the Keelson session; after a single sign-on, end the provider's too where it
    offers an end-session endpoint."""
    id_token = request.session.get(SESSION_ID_TOKEN)
    logout(request)
    if id_token and oidc_enabled():
        target = end_session_url(request, str(id_token))
        if target:
            return HttpResponseRedirect(target)
    return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))
