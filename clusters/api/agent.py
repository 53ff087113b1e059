"""The pull-mode agent's side of the API. Agents authenticate with their own bearer token
(`kat_...`), never with a user's session or API token."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from clusters.models import AgentToken, Cluster
from clusters.services.heartbeat import HeartbeatReply, heartbeat_full, heartbeat_in_thread
from clusters.services.pullcleanup import agent_cleanup_report
from clusters.services.registration import (
    AgentAuthError,
    agent_authenticate,
    agent_exchange,
    agent_token_rotate,
    token_hash,
)
from core.api.parsers import strict_json_loads
from kube.inventory import Inventory, inventory_from_json


class EnrollSerializer(serializers.Serializer[Any]):
    bootstrap_token = serializers.CharField(max_length=200, write_only=True)


class AgentCredentialSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    agent_token = serializers.CharField()
    heartbeat_interval = serializers.IntegerField()
    token_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="The agent rotates its token before this."
    )


class HeartbeatSerializer(serializers.Serializer[Any]):
    inventory = serializers.JSONField()


class HeartbeatReplySerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    status = serializers.CharField()
    heartbeat_interval = serializers.IntegerField()


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Send the agent token as 'Authorization: Bearer <token>'.")
    return token.strip()


def authenticated_agent(request: Request) -> tuple[Cluster, AgentToken]:
    try:
        cluster, row = agent_authenticate(token=_bearer(request))
    except AgentAuthError as error:
        raise AuthenticationFailed(str(error)) from None
    AgentToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return cluster, row


def _credential_response(cluster: Cluster, token: str) -> Response:
    expires = (
        AgentToken.objects.filter(token_hash=token_hash(token))
        .values_list("expires_at", flat=True)
        .first()
    )
    body = {
        "cluster": cluster.name,
        "agent_token": token,
        "heartbeat_interval": settings.KEELSON_AGENT_HEARTBEAT_INTERVAL,
        "token_expires_at": expires.isoformat() if expires else None,
    }
    return Response(body, status=status.HTTP_201_CREATED)


class AgentView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="keelson-agent"'


class AgentTokenView(AgentView):
    """Endpoints that take a token to hand out another: rate-limited per address."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "agent-token"


class AgentEnrollView(AgentTokenView):
    @extend_schema(request=EnrollSerializer, responses={201: AgentCredentialSerializer})
    def post(self, request: Request) -> Response:
        """Exchange a one-time bootstrap token for this cluster's agent token."""
        payload = EnrollSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            cluster, token = agent_exchange(
                bootstrap_token=payload.validated_data["bootstrap_token"]
            )
        except AgentAuthError as error:
            raise AuthenticationFailed(str(error)) from None
        return _credential_response(cluster, token)


class AgentReportView(AgentView):
    """Endpoints that carry a whole cluster's report: a larger body limit than the API's."""

    @property
    def max_body_bytes(self) -> int:
        return int(settings.KEELSON_AGENT_MAX_BODY_BYTES)


class AgentHeartbeatView(AgentReportView):
    """Served by an async view that tries `heartbeat_fast` first; this DRF view documents
    the endpoint and answers what the fast path hands over: refusals (audited), malformed
    bodies, odd requests, a lost database connection."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:  # an async view: Django awaits it
        drf_view = super().as_view(**initkwargs)

        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            reply = await heartbeat_fast(request)
            if reply is not None:
                return reply
            response: HttpResponse = await sync_to_async(drf_view)(request, *args, **kwargs)
            return response

        view.__dict__.update(drf_view.__dict__)  # cls, initkwargs, csrf_exempt: schema, CSRF
        return view

    @extend_schema(request=HeartbeatSerializer, responses=HeartbeatReplySerializer)
    def post(self, request: Request) -> Response:
        """A heartbeat carrying the cluster's inventory (the agent collects it locally)."""
        cluster, _ = authenticated_agent(request)
        payload = HeartbeatSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            inventory = inventory_from_json(payload.validated_data["inventory"])
        except ValueError as error:
            raise ValidationError({"inventory": [str(error)]}) from None
        return Response(_heartbeat_body(heartbeat_full(cluster=cluster, inventory=inventory)))


def _heartbeat_body(reply: HeartbeatReply) -> dict[str, Any]:
    return {
        "cluster": reply.cluster,
        "status": reply.status,
        "heartbeat_interval": settings.KEELSON_AGENT_HEARTBEAT_INTERVAL,
    }


def _plain_heartbeat(request: HttpRequest) -> tuple[str, Inventory] | None:
    """The token and inventory of a well-formed JSON heartbeat, else None (the DRF view
    then answers with its own error, exactly as before)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    accept = request.headers.get("Accept", "")
    if (
        request.method != "POST"
        or scheme.lower() != "bearer"
        or not token.strip()
        or request.content_type != "application/json"
        or not (accept in ("", "*/*") or accept.startswith("application/json"))
    ):
        return None
    try:
        body = strict_json_loads(request.body)
        if not isinstance(body, dict) or "inventory" not in body:
            return None
        return token.strip(), inventory_from_json(body["inventory"])
    except (ValueError, RequestDataTooBig):
        return None


async def heartbeat_fast(request: HttpRequest) -> HttpResponse | None:
    """Answer a well-formed heartbeat of a valid token without DRF or the request thread;
    None hands the request to the DRF view."""
    plain = _plain_heartbeat(request)
    if plain is None:
        return None
    token, inventory = plain
    try:
        reply = await heartbeat_in_thread(token=token, inventory=inventory)
    except AgentAuthError:
        return None  # refused: the DRF view refuses it again, with the audit record
    except (OperationalError, InterfaceError):
        return None  # a dropped connection (replaced already): retry on the request's own
    body = json.dumps(_heartbeat_body(reply), separators=(",", ":"), ensure_ascii=False)
    response = HttpResponse(body.encode(), content_type="application/json")
    response["Vary"] = "Accept"
    response["Allow"] = "POST, OPTIONS"
    return response


class AgentRotateView(AgentTokenView):
    @extend_schema(request=None, responses={201: AgentCredentialSerializer})
    def post(self, request: Request) -> Response:
        """Trade the current agent token for a new one; the old one stops working."""
        try:
            cluster, token = agent_token_rotate(token=_bearer(request))
        except AgentAuthError as error:
            raise AuthenticationFailed(str(error)) from None
        return _credential_response(cluster, token)


class CleanupReportSerializer(serializers.Serializer[Any]):
    operation = serializers.UUIDField()
    deleted = serializers.ListField(
        child=serializers.CharField(max_length=600),
        max_length=100_000,
        required=False,
        default=list,
    )
    error = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


class AgentCleanupView(AgentReportView):
    @extend_schema(request=CleanupReportSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        """The agent's report of the cleanup it was told to do (deregistration with
        cleanup): what it deleted, or why it could not. On success the agent is revoked
        and the cluster removed from the hub."""
        cluster, _ = authenticated_agent(request)
        payload = CleanupReportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        done = agent_cleanup_report(
            cluster=cluster,
            operation_id=data["operation"],
            deleted=data["deleted"],
            error=data["error"],
        )
        if not done:
            raise ValidationError({"operation": ["No cleanup of this cluster waits for a report."]})
        return Response({"cluster": cluster.name, "deregistered": not data["error"]})
