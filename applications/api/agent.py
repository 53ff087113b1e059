"""Pull-mode application work: what an agent's cluster should hold, and its report."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from applications.propagation import agent_work, agent_work_report
from clusters.api.agent import AgentReportView, authenticated_agent
from clusters.services.pullcleanup import agent_instruction


class ApplicationReportSerializer(serializers.Serializer[Any]):
    version = serializers.CharField(max_length=20, allow_blank=True, required=False)
    desired = serializers.IntegerField(min_value=0, required=False)
    available = serializers.IntegerField(min_value=0, required=False)
    complete = serializers.BooleanField(required=False)
    message = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    error = serializers.CharField(max_length=2000, allow_blank=True, required=False)


class WorkReportSerializer(serializers.Serializer[Any]):
    applications = serializers.DictField(child=ApplicationReportSerializer())


class AgentWorkView(AgentReportView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """The objects this cluster should hold: every application placed on it, rendered
        for it (overrides, replica share, owner labels). While a deregistration with
        cleanup waits for the agent, `cleanup` instead says to remove Keelson's objects."""
        cluster, _ = authenticated_agent(request)
        instruction = agent_instruction(cluster=cluster)
        if instruction:  # deregistration with cleanup: nothing more to apply
            return Response({"cluster": cluster.name, "objects": [], **instruction})
        return Response(agent_work(cluster=cluster))

    @extend_schema(request=WorkReportSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        """The agent's report after applying: per application, the version it applied and
        its workloads' desired/available replicas (or the error)."""
        cluster, _ = authenticated_agent(request)
        payload = WorkReportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = agent_work_report(
            cluster=cluster, applications=payload.validated_data["applications"]
        )
        return Response({"cluster": cluster.name, "updated": updated})
