"""`/api/v1/group-mappings/`: the rules that give the identity provider's groups roles in
teams at each single sign-on. Administrators (superusers) only."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import actor
from accounts.api.serializers import GroupMappingSerializer, MembershipRoleSerializer
from accounts.models import GroupMapping
from accounts.permissions import require_superuser
from accounts.sso import group_mapping_create, group_mapping_delete, group_mapping_update


class GroupMappingViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[GroupMapping],
):
    """Group mapping: members of `group` (in the groups claim, KEELSON_OIDC_GROUPS_CLAIM)
    get `role` in `team` at their next sign-in, and lose it at the first sign-in without
    the group. Several rules for one team give the highest role. Only `role` changes on
    update; delete and create a rule to change its group or team."""

    serializer_class = GroupMappingSerializer
    queryset = GroupMapping.objects.select_related("team")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        require_superuser(
            request.user,
            message="Only administrators manage group mapping.",
            request=request,
        )

    def get_queryset(self) -> QuerySet[GroupMapping]:
        return GroupMapping.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = GroupMappingSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        mapping = group_mapping_create(actor=actor(request), **payload.validated_data)
        return Response(GroupMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipRoleSerializer, responses={200: GroupMappingSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(request=MembershipRoleSerializer, responses={200: GroupMappingSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mapping = self.get_object()
        payload = MembershipRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        mapping = group_mapping_update(
            mapping=mapping, role=payload.validated_data["role"], actor=actor(request)
        )
        return Response(GroupMappingSerializer(mapping).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group_mapping_delete(mapping=self.get_object(), actor=actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
