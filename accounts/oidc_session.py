"""A single sign-on session lasts as long as its ID token (or KEELSON_OIDC_SESSION_SECONDS).

Past that, the session ends (its live views close: Django's `user_logged_out`), and a
page request re-authenticates at the provider, which answers without a form while its own
session lasts: the group mapping is applied again. Other requests (forms, htmx, the API
with the session cookie) continue as anonymous and get the usual login redirect or 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core.realtime.guard import SSO_SESSION_EXPIRES as SESSION_EXPIRES

__all__ = ["SESSION_EXPIRES", "oidc_session_middleware"]


def oidc_session_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        expires = session.get(SESSION_EXPIRES) if session is not None else None
        if expires is not None and float(expires) < time.time():
            logout(request)
            is_page = request.method in ("GET", "HEAD") and not request.headers.get("HX-Request")
            if is_page and not request.path.startswith("/api/"):
                target = reverse("accounts:oidc-login")
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{target}?{query}")
        return get_response(request)

    return middleware
