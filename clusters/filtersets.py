"""One FilterSet for the cluster list, shared by the API and the pages."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from clusters.choices import ClusterMode, ClusterStatus, EolState, Provider
from clusters.eol import clusters_by_eol
from clusters.labels import LabelSelector
from clusters.models import Cluster


class SelectorField(forms.CharField):
    """Validates a label selector where the form is cleaned (API 400 / page error)."""

    def clean(self, value: Any) -> str:
        text = str(super().clean(value) or "").strip()
        if text:
            try:
                LabelSelector.parse(text)
            except ValidationError as error:
                # user text: passed as a parameter, never as the format string
                raise forms.ValidationError(
                    "%(reason)s", params={"reason": error.messages[0]}
                ) from None
        return text


class SelectorFilter(django_filters.CharFilter):
    field_class = SelectorField


class ClusterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    provider = django_filters.MultipleChoiceFilter(choices=Provider.choices)
    status = django_filters.MultipleChoiceFilter(choices=ClusterStatus.choices)
    mode = django_filters.ChoiceFilter(choices=ClusterMode.choices)
    region = django_filters.CharFilter()
    environment = django_filters.CharFilter()
    team = django_filters.CharFilter(field_name="team__name")
    selector = SelectorFilter(method="label_selector", label="Label selector")
    eol = django_filters.ChoiceFilter(
        choices=EolState.choices, method="end_of_life", label="End of life"
    )

    class Meta:
        model = Cluster
        fields = [
            "q",
            "provider",
            "status",
            "mode",
            "region",
            "environment",
            "team",
            "selector",
            "eol",
        ]

    def search(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(display_name__icontains=value)
            | Q(description__icontains=value)
            | Q(region__icontains=value)
        )

    def label_selector(
        self, queryset: QuerySet[Cluster], name: str, value: str
    ) -> QuerySet[Cluster]:
        if not value.strip():
            return queryset
        return queryset.filter(LabelSelector.parse(value).to_q())

    def end_of_life(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        return clusters_by_eol(queryset, value) if value else queryset
