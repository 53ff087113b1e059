"""Cost API: rollups (JSON or CSV), prices, rate cards, cluster pricing, budgets."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import (
    TeamOwnedModelViewSet,
    TeamOwnedViewSet,
    actor,
    authorize_create,
    raw_field,
)
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import deny, require_superuser
from clusters.models import Cluster
from clusters.selectors import cluster_get, cluster_list
from core.api.filters import as_utc
from core.csvsafe import SafeWriter
from core.managed import refuse_if_managed
from costs.budgets import budget_create, budget_delete
from costs.models import Budget, ClusterPricing, InstancePrice, RateCard
from costs.prices import (
    instance_price_add,
    instance_prices_clean,
    managed_rate_card,
    rate_card_save,
)
from costs.rollups import AMOUNTS, GROUPS, Rollup, RollupError, cost_rollup, is_filter
from costs.services import budget_status, cluster_pricing_set

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def period_bounds(params: Any) -> tuple[datetime, datetime]:
    """`range` (this-month, last-month, 24h, 7d, 30d) or explicit since/until."""
    now = timezone.now()
    if params.get("since") or params.get("until"):
        since = parse_datetime(params.get("since", "")) if params.get("since") else None
        until = parse_datetime(params.get("until", "")) if params.get("until") else now
        if since is None or until is None:
            raise ValidationError({"since": ["Use ISO 8601 date-times for since and until."]})
        return as_utc(since), as_utc(until)
    name = params.get("range", "this-month")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if name == "this-month":
        return month_start, now + timedelta(hours=1)
    if name == "last-month":
        return (month_start - timedelta(days=1)).replace(day=1), month_start
    if name in PERIODS:
        return now - PERIODS[name], now + timedelta(hours=1)
    raise ValidationError({"range": ["Use this-month, last-month, 24h, 7d or 30d."]})


def rollup_for(request: Any, params: Any) -> tuple[Rollup, datetime, datetime]:
    since, until = period_bounds(params)
    filters = {key: str(params[key]) for key in params if is_filter(key) and params.get(key)}
    period = params.get("period") or None
    try:
        rollup = cost_rollup(
            user=request.user,
            since=since,
            until=until,
            group_by=params.get("group_by", "cluster"),
            period=period,
            filters=filters,
        )
    except RollupError as error:
        raise ValidationError({error.field: [str(error)]}) from None
    return rollup, since, until


EFFICIENCIES = ("cpu_efficiency", "ram_efficiency")


def csv_response(rows: list[dict[str, Any]], group_by: str) -> HttpResponse:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    has_period = bool(rows) and "period" in rows[0]
    header = [
        group_by,
        *(["period"] if has_period else []),
        *AMOUNTS,
        *EFFICIENCIES,
        "cpu_core_hours",
    ]
    writer.writerow(header)
    for row in rows:
        period = [row["period"].date().isoformat()] if has_period else []
        amounts = [row[name] for name in AMOUNTS]
        writer.writerow(
            [
                row["group"],
                *period,
                *amounts,
                *("" if row.get(name) is None else row[name] for name in EFFICIENCIES),
                row["cpu_core_hours"],
            ]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="keelson-cost-by-{group_by}.csv"'
    return response


class CostView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                description="cluster, provider, region, environment, namespace, team, "
                "controller, label:<key> (cluster label), pod_label:<key>, "
                "namespace_label:<key>; two at once comma-separated (team,namespace_label:env). "
                "Each is also a filter (?controller=Deployment/web&pod_label:app=web).",
            ),
            OpenApiParameter("period", OpenApiTypes.STR, enum=["day", "month"]),
            OpenApiParameter(
                "range", OpenApiTypes.STR, enum=["this-month", "last-month", "24h", "7d", "30d"]
            ),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
            OpenApiParameter("export", OpenApiTypes.STR, enum=["csv"]),
            *[OpenApiParameter(key, OpenApiTypes.STR) for key in GROUPS],
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response | HttpResponse:
        """Cost rolled up by a dimension (and day or month), for the teams you can see."""
        rollup, since, until = rollup_for(request, request.query_params)
        group_by = request.query_params.get("group_by", "cluster")
        if request.query_params.get("export") == "csv":
            return csv_response(rollup.rows, group_by)
        return Response(
            {
                "since": since,
                "until": until,
                "group_by": group_by,
                "total": rollup.total,
                "rows": rollup.rows,
            }
        )


class InstancePriceSerializer(serializers.ModelSerializer[InstancePrice]):
    class Meta:
        model = InstancePrice
        fields = ["provider", "region", "instance_type", "hourly", "valid_from"]


class InstancePriceViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[InstancePrice]
):
    """List prices (dated); administrators add a price from a date on."""

    serializer_class = InstancePriceSerializer
    filterset_fields = ["provider", "region", "instance_type"]
    queryset = InstancePrice.objects.order_by("provider", "instance_type", "region", "-valid_from")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        require_superuser(
            request.user, message="Only administrators change list prices.", request=request
        )
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[InstancePrice]) -> None:
        require_superuser(
            self.request.user,
            message="Only administrators change list prices.",
            request=self.request,
        )
        try:
            serializer.instance = instance_price_add(
                actor=self.request.user, **serializer.validated_data
            )
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None


class RateCardSerializer(serializers.ModelSerializer[RateCard]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", queryset=Team.objects.all()
    )

    class Meta:
        model = RateCard
        fields = [
            "name",
            "team",
            "valid_from",
            "cpu_core_hour",
            "ram_gb_hour",
            "gpu_hour",
            "storage_gb_month",
            "instance_prices",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_instance_prices(self, value: Any) -> dict[str, str]:
        try:
            return instance_prices_clean(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict["instance_prices"]) from None


class RateCardViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, TeamOwnedViewSet[RateCard]):
    """Custom prices; a new version (same name, later valid_from) applies from its date."""

    serializer_class = RateCardSerializer
    filterset_fields = ["name"]
    queryset = RateCard.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(request, field="team", minimum=Role.ADMIN, doing="manage rate cards")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[RateCard]) -> None:
        data = dict(serializer.validated_data)
        team = data.pop("team")
        self.require(team, Role.ADMIN, "manage rate cards")
        refuse_if_managed(managed_rate_card(data["name"]))
        try:
            serializer.instance = rate_card_save(actor=self.request.user, team=team, **data)
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None


class ClusterPricingSerializer(serializers.ModelSerializer[ClusterPricing]):
    cluster: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", queryset=Cluster.objects.all()
    )

    class Meta:
        model = ClusterPricing
        fields = [
            "cluster",
            "valid_from",
            "rate_card",
            "discount_percent",
            "gpu_discount_percent",
            "spot",
            "spot_discount_percent",
            "control_plane_monthly",
            "storage_gb_month",
            "share_idle",
            "shared_namespaces",
            "shared_overhead_monthly",
            "share_split",
        ]


class ClusterPricingViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, TeamOwnedViewSet[ClusterPricing]
):
    """How each cluster is priced from a date on (discount, spot, rate card, fees)."""

    serializer_class = ClusterPricingSerializer
    filterset_fields = ["cluster__name"]
    queryset = ClusterPricing.objects.select_related("cluster")
    team_path = "cluster__team"

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)
        if hasattr(serializer, "fields") and "cluster" in serializer.fields:
            serializer.fields["cluster"].queryset = cluster_list(user=self.request.user)
        return serializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Authorized from the raw body, before validation, as `authorize_create` does.
        if name := raw_field(request, "cluster"):
            cluster = cluster_get(user=request.user, name=name)
            if cluster is None:
                deny(
                    f"You have no role in the team of a cluster named {name[:63]!r}.",
                    request=request,
                )
            self.require(cluster.team, Role.ADMIN, "change cluster pricing", cluster)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[ClusterPricing]) -> None:
        cluster = serializer.validated_data["cluster"]
        self.require(cluster.team, Role.ADMIN, "change cluster pricing", cluster)
        data = dict(serializer.validated_data)
        data.pop("cluster")
        try:
            serializer.instance = cluster_pricing_set(
                actor=self.request.user, cluster=cluster, created_by=self.request.user, **data
            )
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None


class BudgetSerializer(serializers.ModelSerializer[Budget]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", queryset=Team.objects.all()
    )

    class Meta:
        model = Budget
        fields = ["name", "team", "cluster_set", "monthly_amount", "created_at"]
        read_only_fields = ["created_at"]


class BudgetViewSet(TeamOwnedModelViewSet[Budget]):
    """Monthly budgets per team or cluster set; `status` gives spend and forecast."""

    serializer_class = BudgetSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "delete", "head", "options"]
    queryset = Budget.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(request, field="team", minimum=Role.ADMIN, doing="manage budgets")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[Budget]) -> None:
        data = dict(serializer.validated_data)
        team = data["team"]
        self.require(team, Role.ADMIN, "manage budgets")
        try:
            serializer.instance = budget_create(
                actor=actor(self.request),
                team=team,
                name=data["name"],
                monthly_amount=data["monthly_amount"],
                cluster_set=data.get("cluster_set"),
            )
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None

    def perform_destroy(self, instance: Budget) -> None:
        self.require(instance.team, Role.ADMIN, "manage budgets", instance)
        refuse_if_managed(instance)
        budget_delete(actor=actor(self.request), budget=instance)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request: Request, name: str | None = None) -> Response:
        budget = self.get_object()
        body = dict(BudgetSerializer(budget).data)
        body["status"] = budget_status(budget)
        return Response(body, status=status.HTTP_200_OK)
