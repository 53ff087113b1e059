from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api.base import actor
from accounts.api.serializers import (
    MembershipRoleSerializer,
    MembershipSerializer,
    MembershipWriteSerializer,
    TeamGuardrailsSerializer,
    TeamSerializer,
    TeamUpdateSerializer,
)
from accounts.choices import Role
from accounts.models import Membership, Team
from accounts.permissions import require_role, require_superuser, teams_for
from accounts.selectors import addable_user
from accounts.services import (
    membership_remove,
    membership_set,
    team_create,
    team_guardrails_set,
    team_update,
)


class TeamViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[Team],
):
    """Teams own clusters and applications. Members are viewers, operators or admins.
    Administrators create teams; a team's admins change its display name, description and
    members. Members with source `idp` come from the group mapping and are changed only by
    the identity provider's groups."""

    serializer_class = TeamSerializer
    lookup_field = "name"

    @extend_schema(request=TeamUpdateSerializer, responses={200: TeamSerializer})
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        team = self.get_object()
        require_role(
            request.user,
            team,
            Role.ADMIN,
            message="Only a team admin can change the team.",
            request=request,
            target=team,
        )
        payload = TeamUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        team = team_update(
            team=team,
            actor=actor(request),
            display_name=payload.validated_data.get("display_name", team.display_name),
            description=payload.validated_data.get("description", team.description),
        )
        return Response(TeamSerializer(team).data)

    def get_queryset(self) -> QuerySet[Team]:
        return teams_for(self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        require_superuser(
            request.user, message="Only administrators can create teams.", request=request
        )
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[Team]) -> None:
        require_superuser(
            self.request.user, message="Only administrators can create teams.", request=self.request
        )
        serializer.instance = team_create(actor=actor(self.request), **serializer.validated_data)

    @extend_schema(
        request=MembershipWriteSerializer, responses={200: MembershipSerializer(many=True)}
    )
    @action(detail=True, methods=["get", "post"])
    def members(self, request: Request, name: str | None = None) -> Response:
        team = self.get_object()
        if request.method == "POST":
            require_role(
                request.user,
                team,
                Role.ADMIN,
                message="Only a team admin can change its members.",
                request=request,
                target=team,
            )
            payload = MembershipWriteSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            user = addable_user(actor=request.user, username=payload.validated_data["username"])
            if user is None:
                # The same answer whether the account exists or not: no user-name oracle.
                raise ValidationError(
                    {
                        "username": "No user you can add has this name: a team admin adds "
                        "people who already share a team with them; an administrator adds "
                        "anyone."
                    }
                )
            membership_set(
                team=team,
                user=user,
                role=Role(payload.validated_data["role"]),
                actor=request.user if isinstance(request.user, AbstractBaseUser) else None,
            )
        memberships = team.memberships.select_related("user").order_by("user__username")
        return Response(
            MembershipSerializer(memberships, many=True).data,
            status=status.HTTP_200_OK,
        )

    @extend_schema(
        methods=["PATCH"], request=MembershipRoleSerializer, responses={200: MembershipSerializer}
    )
    @extend_schema(methods=["DELETE"], request=None, responses={204: None})
    @action(
        detail=True,
        methods=["patch", "delete"],
        url_path=r"members/(?P<username>[^/]+)",
        url_name="member",
    )
    def member(self, request: Request, name: str | None = None, username: str = "") -> Response:
        """Change a member's role (PATCH) or remove them (DELETE): team admins; refused
        for members from the group mapping."""
        team = self.get_object()
        require_role(
            request.user,
            team,
            Role.ADMIN,
            message="Only a team admin can change its members.",
            request=request,
            target=team,
        )
        membership = (
            Membership.objects.select_related("user")
            .filter(team=team, user__username=username)
            .first()
        )
        if membership is None:
            raise NotFound(f"{username[:150]!r} is not a member of this team.")
        if request.method == "DELETE":
            membership_remove(team=team, user=membership.user, actor=actor(request))
            return Response(status=status.HTTP_204_NO_CONTENT)
        payload = MembershipRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = membership_set(
            team=team,
            user=membership.user,
            role=Role(payload.validated_data["role"]),
            actor=actor(request),
        )
        return Response(MembershipSerializer(updated).data)

    @extend_schema(request=TeamGuardrailsSerializer, responses={200: TeamGuardrailsSerializer})
    @action(detail=True, methods=["get", "patch"])
    def guardrails(self, request: Request, name: str | None = None) -> Response:
        """What the team's applications may contain: allowed namespaces (names or globs)
        and whether cluster-scoped kinds are allowed. Only a team admin changes them."""
        team = self.get_object()
        if request.method == "PATCH":
            require_role(
                request.user,
                team,
                Role.ADMIN,
                message="Only a team admin can change its guardrails.",
                request=request,
                target=team,
            )
            payload = TeamGuardrailsSerializer(team, data=request.data, partial=True)
            payload.is_valid(raise_exception=True)
            assert isinstance(request.user, AbstractBaseUser)
            team = team_guardrails_set(team=team, actor=request.user, **payload.validated_data)
        return Response(TeamGuardrailsSerializer(team).data)
