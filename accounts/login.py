"""Login with a limit on failed attempts per address and user name (Redis-backed cache).

The count is taken atomically *before* the password is checked: each attempt claims a
slot with one Redis INCR, and an attempt past the limit is refused without checking the
password. Checking first and counting after (the earlier code) let parallel guesses all
read "0 failures" and all be checked. A successful login gives the slots back.

The Django admin has no login of its own: `/admin/login/` sends the browser here, so the
same limit guards superusers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from accounts.oidc import oidc_enabled
from audit.services import audit_record_denied
from core.counters import counter_claim

LOCAL_LOGIN_OFF = "Signing in with a user name and password is turned off here: use single sign-on."


def login_context(request: HttpRequest) -> dict[str, Any]:
    """What the login page shows: the single sign-on button, the local form, or both."""
    next_url = str(request.GET.get("next", "") or request.POST.get("next", ""))
    sso_url = reverse("accounts:oidc-login")
    if next_url:
        sso_url += "?" + urlencode({"next": next_url})
    return {
        "sso_enabled": oidc_enabled(),
        "sso_url": sso_url,
        "local_login": settings.KEELSON_LOCAL_LOGIN,
    }


def _key(request: HttpRequest) -> str:
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    return f"login-failures:{request.META.get('REMOTE_ADDR', '')}:{username}"


class ThrottledLoginView(auth_views.LoginView):
    """Past KEELSON_LOGIN_MAX_FAILURES attempts without a success in KEELSON_LOGIN_WINDOW
    seconds, further attempts for that address and user name get 429 until the window
    passes (the password is then not even checked)."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **login_context(self.request)}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.KEELSON_LOCAL_LOGIN:
            # Refused before anything is checked: the password is never looked at.
            audit_record_denied(request=request, reason="local login is turned off")
            response = self.render_to_response(
                self.get_context_data(form=self.get_form_class()(), local_refused=LOCAL_LOGIN_OFF)
            )
            response.status_code = 403
            return response
        attempt = counter_claim(_key(request), timeout=settings.KEELSON_LOGIN_WINDOW)
        if attempt > settings.KEELSON_LOGIN_MAX_FAILURES:
            audit_record_denied(request=request, reason="too many failed logins")
            minutes = max(1, settings.KEELSON_LOGIN_WINDOW // 60)
            response = self.render_to_response(
                self.get_context_data(
                    form=self.get_form(),
                    throttled=f"Too many failed attempts. Try again in {minutes} minutes.",
                )
            )
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(_key(self.request))
        return super().form_valid(form)


def admin_login_redirect(request: HttpRequest) -> HttpResponse:
    """`/admin/login/`: to the app's (throttled) login, keeping where to go next. A POST
    is not a login attempt here: its password is never checked."""
    target = request.GET.get("next") or reverse("admin:index")
    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': target})}")
