"""`/api/v1/tokens/`: a user's own API tokens. The secret is in the answer to create and
rotate only. A request made with a token cannot mint a token of a wider scope than its own."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.serializers import (
    ApiTokenCreateSerializer,
    ApiTokenIssuedSerializer,
    ApiTokenSerializer,
)
from accounts.choices import TokenScope
from accounts.models import ApiToken
from accounts.tokens import IssuedToken, api_token_create, api_token_revoke, api_token_rotate


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsAuthenticated ran first
    return user


def _within_caller_scope(request: Request, scope: str) -> None:
    caller = getattr(request.user, "token_scope", None)
    if caller is None:
        return  # a browser session: the user's full rights
    if not TokenScope(caller).role_cap.includes(TokenScope(scope).role_cap):
        raise PermissionDenied(f"A {caller}-scoped token cannot create a {scope}-scoped token.")


def _issued(issued: IssuedToken, code: int) -> Response:
    data = dict(ApiTokenSerializer(issued.token).data)
    data["secret"] = issued.secret
    return Response(data, status=code)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ApiToken],
):
    """Your API tokens: send one as `Authorization: Bearer <secret>`. Scopes: read (safe
    methods only), write (up to operator actions), admin (everything you may do). DELETE
    revokes a token (it stays listed, revoked)."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is being built
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=_user(self.request))

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenIssuedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = ApiTokenCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        _within_caller_scope(request, payload.validated_data["scope"])
        issued = api_token_create(
            user=_user(request),
            name=payload.validated_data["name"],
            scope=payload.validated_data["scope"],
            expires_in_days=payload.validated_data.get("expires_in_days"),
        )
        return _issued(issued, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: ApiTokenIssuedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        _within_caller_scope(request, token.scope)
        return _issued(api_token_rotate(user=_user(request), token=token), status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        api_token_revoke(user=_user(request), token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
