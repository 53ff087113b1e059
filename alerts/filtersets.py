"""FilterSets shared by the API and the pages."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from alerts.choices import SHOWN_STATES, AlertState, RuleKind, Severity
from alerts.models import Alert, AlertRule, Silence
from core.api.filters import UtcDateTimeFilter


class AlertRuleFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name")
    kind = django_filters.MultipleChoiceFilter(choices=RuleKind.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = AlertRule
        fields = ["team", "kind", "severity", "enabled"]


def shown_state_q(state: str) -> Q:
    """Rows in one of the states the pages show (Alert.shown_state)."""
    firing = Q(state=AlertState.FIRING)
    return {
        "firing": firing & Q(silence__isnull=True, acknowledged_at__isnull=True),
        "acknowledged": firing & Q(silence__isnull=True, acknowledged_at__isnull=False),
        "silenced": firing & Q(silence__isnull=False),
        "resolved": Q(state=AlertState.RESOLVED),
    }[state]


class AlertFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name")
    state = django_filters.MultipleChoiceFilter(
        choices=[(s, s.capitalize()) for s in SHOWN_STATES], method="by_state"
    )
    active = django_filters.BooleanFilter(method="by_active", label="Firing (in any way) or not")
    rule = django_filters.CharFilter(field_name="rule__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    fingerprint = django_filters.CharFilter()
    since = UtcDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = Alert
        fields = ["team", "state", "active", "rule", "cluster", "severity", "fingerprint"]

    def by_state(self, queryset: QuerySet[Alert], name: str, value: list[str]) -> QuerySet[Alert]:
        if not value:
            return queryset
        combined = Q()
        for state in value:
            combined |= shown_state_q(state)
        return queryset.filter(combined)

    def by_active(
        self, queryset: QuerySet[Alert], name: str, value: bool | None
    ) -> QuerySet[Alert]:
        if value is None:
            return queryset
        firing = Q(state=AlertState.FIRING)
        return queryset.filter(firing if value else ~firing)


class SilenceFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name")
    active = django_filters.BooleanFilter(method="by_active", label="In force now")

    class Meta:
        model = Silence
        fields = ["team", "active"]

    def by_active(
        self, queryset: QuerySet[Silence], name: str, value: bool | None
    ) -> QuerySet[Silence]:
        if value is None:
            return queryset
        now = timezone.now()
        active = Q(starts_at__lte=now, ends_at__gt=now)
        return queryset.filter(active if value else ~active)
