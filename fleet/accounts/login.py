"""Login with a limit on failed attempts per address and user name (Redis-backed cache)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from fleet.audit.services import audit_record_denied


def _key(request: HttpRequest) -> str:
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    return f"login-failures:{request.META.get('REMOTE_ADDR', '')}:{username}"


class ThrottledLoginView(auth_views.LoginView):
    """After KEELSON_LOGIN_MAX_FAILURES failures in KEELSON_LOGIN_WINDOW seconds, further
    attempts for that address and user name get 429 until the window passes."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if int(cache.get(_key(request), 0)) >= settings.KEELSON_LOGIN_MAX_FAILURES:
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

    def form_invalid(self, form: Any) -> HttpResponse:
        key = _key(self.request)
        cache.add(key, 0, timeout=settings.KEELSON_LOGIN_WINDOW)
        cache.incr(key)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(_key(self.request))
        return super().form_valid(form)
