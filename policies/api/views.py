"""Policies API: CRUD with validated rules, evaluate now, impact preview, enforce,
results history and the compliance summary. Team-scoped like clusters and applications:
another team's policy is a 404, a viewer's change a 403."""

from __future__ import annotations

from dataclasses import asdict

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import user_has_role
from clusters.models import Cluster, ClusterSet
from core.managed import refuse_if_managed
from policies import cel, celcost
from policies.api.serializers import (
    FOLLOW_POLICY,
    ClusterImpactSerializer,
    ClusterModesWriteSerializer,
    ClusterPlanSerializer,
    EnforcementActionSerializer,
    EvaluationSerializer,
    PolicySerializer,
    PolicyWriteSerializer,
    PssPinSerializer,
)
from policies.choices import Mode
from policies.external.guard import refuse_external
from policies.filtersets import EvaluationFilterSet, PolicyFilterSet
from policies.models import ClusterSetPin, Policy, PolicyClusterMode, PolicyEvaluation
from policies.selectors import (
    compliance_summary,
    latest_evaluations,
    policy_list,
)
from policies.services.cluster_modes import policy_cluster_modes_clear, policy_cluster_modes_set
from policies.services.enforcement import enforcement_preview, policy_enforce
from policies.services.evaluation import policy_clusters, policy_evaluate
from policies.services.impact import policy_enforce_impact
from policies.services.pins import cluster_set_pin
from policies.services.policies import (
    ENFORCE_ROLE,
    PolicySpec,
    policy_create,
    policy_delete,
    policy_update,
)

TEAM_PARAM = OpenApiParameter(
    "team", str, description="The owning team, when the name exists in several of yours."
)


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


@extend_schema_view(
    retrieve=extend_schema(parameters=[TEAM_PARAM]),
    partial_update=extend_schema(parameters=[TEAM_PARAM]),
    destroy=extend_schema(parameters=[TEAM_PARAM]),
)
class PolicyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TeamOwnedViewSet[Policy],
):
    serializer_class = PolicySerializer
    filterset_class = PolicyFilterSet
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = Policy.objects.select_related("team").prefetch_related(
        "rules",
        "cluster_sets",
        Prefetch(
            "cluster_modes",
            queryset=PolicyClusterMode.objects.select_related("cluster", "set_by").order_by(
                "cluster__name"
            ),
        ),
    )

    def get_object(self) -> Policy:
        """By name; `?team=` picks among same-named policies of several teams."""
        query = self.get_queryset().filter(name=self.kwargs["name"])
        if team := self.request.query_params.get("team"):
            query = query.filter(team__name=team)
        found = list(query[:2])
        if not found:
            raise Http404("No such policy.")
        if len(found) > 1:
            raise ValidationError({"team": ["Several of your teams have this policy: add ?team=."]})
        return found[0]

    @extend_schema(request=PolicyWriteSerializer, responses={201: PolicySerializer})
    def create(self, request: Request) -> Response:
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="create policies")
        payload = PolicyWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        team = Team.objects.filter(name=data.pop("team")).first()
        if team is None or not user_has_role(request.user, team, Role.VIEWER):
            raise ValidationError({"team": ["No such team."]})
        self.require(team, Role.OPERATOR, "create policies")
        try:
            policy = policy_create(team=team, spec=PolicySpec(**data), actor=actor(request))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyWriteSerializer, responses=PolicySerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        policy = self.get_object()
        self.require(policy.team, Role.OPERATOR, "change policies", policy)
        refuse_if_managed(policy)
        payload = PolicyWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data.pop("team", None)
        spec = PolicySpec(**{**asdict(PolicySpec.of(policy)), **data})
        try:
            policy = policy_update(policy=policy, spec=spec, actor=actor(request))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(PolicySerializer(self.get_queryset().get(pk=policy.pk)).data)

    def destroy(self, request: Request, name: str | None = None) -> Response:
        policy = self.get_object()
        self.require(policy.team, Role.OPERATOR, "delete policies", policy)
        refuse_if_managed(policy)
        try:
            policy_delete(policy=policy, actor=actor(request))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        parameters=[TEAM_PARAM],
        responses={200: EvaluationSerializer(many=True), 202: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"])
    def evaluate(self, request: Request, name: str | None = None) -> Response:
        """Evaluate the policy now on every cluster it targets (forced: nothing is skipped).
        Up to 20 clusters the results come back at once; beyond, batches are queued (202)."""
        policy = self.get_object()
        self.require(policy.team, Role.OPERATOR, "evaluate policies", policy)
        try:
            done = policy_evaluate(policy=policy)
        except DjangoValidationError as error:
            raise _errors(error) from None
        if done.queued:
            return Response({"clusters": done.queued}, status=status.HTTP_202_ACCEPTED)
        return Response(EvaluationSerializer(done.results, many=True).data)

    @extend_schema(
        request=None, parameters=[TEAM_PARAM], responses=ClusterPlanSerializer(many=True)
    )
    @action(detail=True, methods=["post"], url_path="preview-enforcement")
    def preview_enforcement(self, request: Request, name: str | None = None) -> Response:
        """Impact preview: what enforcing the policy would apply and delete on each
        targeted cluster. Nothing is changed or stored."""
        policy = self.get_object()
        self.require(policy.team, Role.OPERATOR, "preview enforcement", policy)
        try:
            refuse_external(policy)
        except DjangoValidationError as error:
            raise _errors(error) from None
        plans = enforcement_preview(policy=policy)
        return Response([plan.as_json() for plan in plans])

    @extend_schema(
        request=None, parameters=[TEAM_PARAM], responses=EnforcementActionSerializer(many=True)
    )
    @action(detail=True, methods=["post"])
    def enforce(self, request: Request, name: str | None = None) -> Response:
        """Remediate now on every targeted cluster; returns the recorded actions."""
        policy = self.get_object()
        self.require(policy.team, Role.ADMIN, "enforce policies", policy)
        try:
            refuse_external(policy)
        except DjangoValidationError as error:
            raise _errors(error) from None
        with cel.budget(celcost.REQUEST_BUDGET):  # user CEL on a web thread: bounded
            policy_enforce(policy=policy, actor=actor(request))
        actions = policy.actions.select_related("cluster")[:200]
        return Response(EnforcementActionSerializer(actions, many=True).data)

    @extend_schema(
        request=ClusterModesWriteSerializer, parameters=[TEAM_PARAM], responses=PolicySerializer
    )
    @action(detail=True, methods=["post"], url_path="cluster-modes")
    def cluster_modes(self, request: Request, name: str | None = None) -> Response:
        """Set the policy's mode on some of its clusters (an override of its own mode
        there), or remove the override ("policy"). Enforcing somewhere needs the admin
        role; the clusters that enforce are evaluated and remediated at once."""
        policy = self.get_object()
        self.require(policy.team, Role.OPERATOR, "change a policy's cluster modes", policy)
        payload = ClusterModesWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        mode = str(data["mode"])
        follows = mode == FOLLOW_POLICY
        enforcing = mode == Mode.ENFORCE or (follows and policy.mode == Mode.ENFORCE)
        if enforcing:
            self.require(policy.team, ENFORCE_ROLE, "set a policy to enforce on clusters", policy)
        names = list(data["clusters"])
        clusters = list(Cluster.objects.filter(team_id=policy.team_id, name__in=names))
        missing = sorted(set(names) - {c.name for c in clusters})
        if missing:
            raise ValidationError(
                {"clusters": [f"No such cluster in team {policy.team.name}: {', '.join(missing)}."]}
            )
        reason = str(data["reason"])
        try:
            if follows:
                policy_cluster_modes_clear(
                    actor=actor(request), policy=policy, clusters=clusters, reason=reason
                )
            else:
                policy_cluster_modes_set(
                    actor=actor(request), policy=policy, clusters=clusters, mode=mode, reason=reason
                )
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(PolicySerializer(self.get_queryset().get(pk=policy.pk)).data)

    @extend_schema(
        parameters=[
            TEAM_PARAM,
            OpenApiParameter("cluster", str, many=True, description="Only these clusters."),
        ],
        responses=ClusterImpactSerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="enforce-impact")
    def enforce_impact(self, request: Request, name: str | None = None) -> Response:
        """What enforcing the policy would remediate or deny on each cluster it targets (or
        the named ones), from the newest evaluation there: no cluster is read or changed
        (`preview-enforcement` reads the clusters now)."""
        policy = self.get_object()
        clusters = policy_clusters(policy=policy).order_by("name")
        if names := request.query_params.getlist("cluster"):
            clusters = clusters.filter(name__in=names)
            missing = sorted(set(names) - {c.name for c in clusters})
            if missing:
                raise ValidationError(
                    {"cluster": [f"Not targeted by policy {policy.name}: {', '.join(missing)}."]}
                )
        impacts = policy_enforce_impact(policy=policy, clusters=list(clusters))
        return Response([impact.as_json() for impact in impacts.values()])

    @extend_schema(parameters=[TEAM_PARAM], responses=EvaluationSerializer(many=True))
    @action(detail=True, methods=["get"])
    def results(self, request: Request, name: str | None = None) -> Response:
        """The newest result on each targeted cluster."""
        policy = self.get_object()
        rows = latest_evaluations(Policy.objects.filter(pk=policy.pk)).select_related(
            "policy__team", "cluster"
        )
        return Response(EvaluationSerializer(rows, many=True).data)


class EvaluationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[PolicyEvaluation]
):
    """Every stored outcome (newest first), filterable by policy, cluster, status and time.
    A row is stored when a (policy, cluster) outcome changes or on a forced evaluation;
    `evaluated_at` is when the outcome was first found, `checked_at` when an evaluation last
    found it again."""

    serializer_class = EvaluationSerializer
    filterset_class = EvaluationFilterSet
    queryset = PolicyEvaluation.objects.select_related("policy__team", "cluster")
    team_path = "policy__team"


class ComplianceView(APIView):
    """Fleet-wide compliance from the newest result of each policy on each cluster:
    overall, per policy (a list naming each policy's team: names repeat across teams) and
    per standard. `percent` counts compliant among judged pairs."""

    @extend_schema(
        parameters=[OpenApiParameter("team", str), OpenApiParameter("standard", str)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        policies = policy_list(user=request.user)
        if team := request.query_params.get("team"):
            policies = policies.filter(team__name=team)
        if standard := request.query_params.get("standard"):
            policies = policies.filter(standards__contains=[standard])
        return Response(compliance_summary(policies).as_json())


class PssPinViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[ClusterSet]):
    """The Pod Security Standards version each of your cluster sets pins ("latest": none).
    PUT pins a set (operator role), "latest" or DELETE removes the pin; the set's clusters
    are evaluated again. A policy pinned itself keeps its own version."""

    serializer_class = PssPinSerializer
    lookup_field = "name"
    lookup_url_kwarg = "cluster_set"
    http_method_names = ["get", "put", "delete", "head", "options"]
    queryset = (
        ClusterSet.objects.select_related("team")
        .annotate(
            pinned=Subquery(
                ClusterSetPin.objects.filter(cluster_set=OuterRef("pk")).values("pss_version")[:1]
            )
        )
        .order_by("name")
    )

    def _pin(self, request: Request, version: str | None) -> Response:
        """Authorize first (a caller without the role learns nothing from validation)."""
        cluster_set = self.get_object()
        self.require(cluster_set.team, Role.OPERATOR, "pin a Pod Security Standards version")
        if version is None:
            payload = PssPinSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            version = str(payload.validated_data["pss_version"])
        try:
            cluster_set_pin(cluster_set=cluster_set, pss_version=version, actor=actor(request))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(PssPinSerializer(self.get_object()).data)

    @extend_schema(request=PssPinSerializer, responses=PssPinSerializer)
    def update(self, request: Request, cluster_set: str | None = None) -> Response:
        return self._pin(request, None)

    @extend_schema(request=None, responses=PssPinSerializer)
    def destroy(self, request: Request, cluster_set: str | None = None) -> Response:
        return self._pin(request, "latest")
