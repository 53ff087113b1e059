"""Account pages: the user's API tokens and the password change. Each calls the same
services as the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from accounts.choices import TokenScope
from accounts.models import ApiToken
from accounts.services import user_password_change
from accounts.tokens import (
    IssuedToken,
    api_token_create,
    api_token_revoke,
    api_token_rotate,
)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    expires_in_days = forms.IntegerField(min_value=1, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["expires_in_days"]
        assert isinstance(field, forms.IntegerField)
        field.max_value = settings.KEELSON_API_TOKEN_MAX_DAYS
        field.widget.attrs.update(
            max=settings.KEELSON_API_TOKEN_MAX_DAYS,
            placeholder=settings.KEELSON_API_TOKEN_DEFAULT_DAYS,
        )


class PasswordForm(PasswordChangeForm):
    revoke_tokens = forms.BooleanField(
        required=False,
        initial=True,
        label="Also revoke all my API tokens",
        help_text="Leave checked if you change your password because it may have leaked.",
    )


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required ran first
    return user


def _own_token(request: HttpRequest) -> ApiToken | None:
    token_id = str(request.POST.get("token", ""))
    if not token_id.isdigit():
        return None
    return ApiToken.objects.filter(pk=int(token_id), user=_user(request)).first()


@never_cache
@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    """List, create, rotate and revoke your tokens. A new secret is shown in this one
    response only (never cached, never in a URL or a message stored in the session)."""
    form = TokenForm()
    issued: IssuedToken | None = None
    status = 200
    if request.method == "POST":
        do = request.POST.get("do")
        try:
            if do == "create":
                form = TokenForm(request.POST)
                if form.is_valid():
                    issued = api_token_create(user=_user(request), **form.cleaned_data)
                    form = TokenForm()
                else:
                    status = 400
            elif do in ("rotate", "revoke") and (token := _own_token(request)) is not None:
                if do == "rotate":
                    issued = api_token_rotate(user=_user(request), token=token)
                else:
                    api_token_revoke(user=_user(request), token=token)
                    messages.success(request, f"Token {token} revoked.")
                    return redirect("accounts:tokens")
            else:
                messages.error(request, "No such token.")
                return redirect("accounts:tokens")
        except ValidationError as error:
            form.add_error(None, error)
            status = 400
    tokens = ApiToken.objects.filter(user=_user(request))
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": tokens, "issued": issued, "now": timezone.now()},
        status=status,
    )


@never_cache
@login_required
def password_page(request: HttpRequest) -> HttpResponse:
    """Change your password. Your other sessions end; this one continues."""
    user = _user(request)
    form = PasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        revoked = user_password_change(
            user=user,
            new_password=form.cleaned_data["new_password1"],
            revoke_tokens=form.cleaned_data["revoke_tokens"],
            request=request,
        )
        update_session_auth_hash(request, user)
        note = f" {revoked} API tokens revoked." if revoked else ""
        messages.success(request, "Password changed; your other sessions are signed out." + note)
        return redirect("accounts:password")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/password.html", {"form": form}, status=status)
