"""FilterSets shared by the API and the pages."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from core.api.filters import UtcDateTimeFilter
from policies.choices import Mode, ResultStatus, Severity, SourceEngine
from policies.models import Policy, PolicyEvaluation

KEELSON = "keelson"  # the engine filter's value for Keelson's own policies


class PolicyFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name")
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    mode = django_filters.ChoiceFilter(choices=Mode.choices)
    standard = django_filters.CharFilter(method="by_standard", label="Standard or control id")
    bundled = django_filters.BooleanFilter()
    enabled = django_filters.BooleanFilter()
    engine = django_filters.ChoiceFilter(
        choices=[(KEELSON, "Keelson"), *SourceEngine.choices],
        method="by_engine",
        label="Judged by",
    )

    class Meta:
        model = Policy
        fields = ["team", "severity", "mode", "standard", "bundled", "enabled", "engine"]

    def by_standard(self, queryset: QuerySet[Policy], name: str, value: str) -> QuerySet[Policy]:
        return queryset.filter(standards__contains=[value]) if value else queryset

    def by_engine(self, queryset: QuerySet[Policy], name: str, value: str) -> QuerySet[Policy]:
        """Keelson's own policies, or the external ones of one engine."""
        if not value:
            return queryset
        return queryset.filter(source_engine="" if value == KEELSON else value)


class EvaluationFilterSet(django_filters.FilterSet):
    policy = django_filters.CharFilter(field_name="policy__name")
    team = django_filters.CharFilter(field_name="policy__team__name")
    cluster = django_filters.CharFilter(method="by_cluster")
    status = django_filters.MultipleChoiceFilter(choices=ResultStatus.choices)
    since = UtcDateTimeFilter(field_name="evaluated_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="evaluated_at", lookup_expr="lt")

    class Meta:
        model = PolicyEvaluation
        fields = ["policy", "team", "cluster", "status", "since", "until"]

    def by_cluster(
        self, queryset: QuerySet[PolicyEvaluation], name: str, value: str
    ) -> QuerySet[PolicyEvaluation]:
        """A registered cluster by its name, a deregistered one by the name kept on its
        results."""
        if not value:
            return queryset
        return queryset.filter(Q(cluster__name=value) | Q(cluster__isnull=True, cluster_name=value))
