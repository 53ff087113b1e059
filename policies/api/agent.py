"""Pull-mode policies: what a cluster's agent evaluates, and its report."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from clusters.api.agent import AgentReportView, authenticated_agent
from policies.choices import ActionKind, ActionStatus
from policies.services.agent import agent_policies, agent_policies_report
from policies.services.evaluation import MAX_LISTED


class PolicyResultSerializer(serializers.Serializer[Any]):
    policy = serializers.IntegerField(min_value=1)
    generation = serializers.IntegerField(min_value=1)
    checked = serializers.IntegerField(min_value=0, required=False, default=0)
    violations = serializers.ListField(
        child=serializers.DictField(), max_length=MAX_LISTED, required=False, default=list
    )
    errors = serializers.ListField(  # type: ignore[assignment]  # the report's key
        child=serializers.DictField(), max_length=MAX_LISTED, required=False, default=list
    )
    violations_total = serializers.IntegerField(min_value=0, required=False, default=0)
    errors_total = serializers.IntegerField(min_value=0, required=False, default=0)
    error = serializers.CharField(max_length=1000, allow_blank=True, required=False, default="")


class EnforcementActionSerializer(serializers.Serializer[Any]):
    policy = serializers.IntegerField(min_value=1)
    rule = serializers.CharField(max_length=63)
    action = serializers.ChoiceField(choices=ActionKind.choices)
    status = serializers.ChoiceField(choices=[ActionStatus.SUCCEEDED, ActionStatus.FAILED])
    target = serializers.DictField(child=serializers.CharField(max_length=253, allow_blank=True))
    message = serializers.CharField(max_length=1000, allow_blank=True, required=False, default="")


class PolicyReportSerializer(serializers.Serializer[Any]):
    results = serializers.ListField(child=PolicyResultSerializer(), max_length=5000)
    actions = serializers.ListField(
        child=EnforcementActionSerializer(), max_length=5000, required=False, default=list
    )


class AgentPoliciesView(AgentReportView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """The enabled policies targeting this cluster (rules, generation, mode) and the
        cluster's facts for cluster rules: what the agent evaluates."""
        cluster, _ = authenticated_agent(request)
        return Response(agent_policies(cluster=cluster))

    @extend_schema(request=PolicyReportSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        """The agent's judgements, one per policy (at the generation it judged), and the
        enforcement actions it took; stored as the cluster's policy results."""
        cluster, _ = authenticated_agent(request)
        payload = PolicyReportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        counts = agent_policies_report(
            cluster=cluster,
            results=payload.validated_data["results"],
            actions=payload.validated_data["actions"],
        )
        return Response({"cluster": cluster.name, **counts})
