"""Alert rules, alerts (one row per incident), their notification groups and silences."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from alerts.choices import AlertState, RuleKind, Severity

_USER = settings.AUTH_USER_MODEL


class AlertRule(models.Model):
    """What a team wants to hear about: a kind with its parameters, a scope (a cluster set
    and/or a label selector; empty means every cluster of the team), a severity and how
    its alerts are grouped and repeated (grouping.py). A rule scoped to a cluster set goes
    with the set (as a budget does): kept, it would watch the whole team instead."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63)
    description = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    params = models.JSONField(default=dict, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    cluster_set = models.ForeignKey(
        "clusters.ClusterSet", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    selector = models.CharField(max_length=1000, blank=True)
    group_by = models.JSONField(default=list, blank=True)
    group_wait = models.PositiveIntegerField(default=5)
    group_interval = models.PositiveIntegerField(default=60)
    repeat_interval = models.PositiveIntegerField(default=4 * 3600)
    enabled = models.BooleanField(default=True)
    # What a rule remembers between evaluations (the compliance readings a drop compares).
    state = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="alertrule_name_per_team"),
            models.CheckConstraint(
                condition=models.Q(kind__in=RuleKind.values), name="alertrule_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=Severity.values), name="alertrule_severity_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AlertGroup(models.Model):
    """The alerts of one rule with the same grouping labels: the unit of notification.
    `next_flush_at` is when it next has something to say (null: nothing pending)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="groups")
    key = models.CharField(max_length=64, unique=True)
    labels = models.JSONField(default=dict)
    first_at = models.DateTimeField()
    last_flush_at = models.DateTimeField(null=True, blank=True)
    next_flush_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return self.key


class Alert(models.Model):
    """One incident: from the moment a rule's condition held for a subject until it
    cleared. History is these rows; a firing alert is unique per fingerprint."""

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey(AlertGroup, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=16)
    subject = models.CharField(max_length=200)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    severity = models.CharField(max_length=16, choices=Severity.choices)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    state = models.CharField(
        max_length=16, choices=AlertState.choices, default=AlertState.FIRING, db_index=True
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    silence = models.ForeignKey(
        "Silence", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    resolved_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [
            models.Index(fields=["team", "state"]),
            models.Index(fields=["cluster", "-starts_at"]),
            models.Index(fields=["rule", "state"]),
        ]
        constraints = [
            # Re-evaluations and racing workers find the open incident, never a second one.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(state=AlertState.FIRING),
                name="alert_one_firing_per_fingerprint",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=AlertState.values), name="alert_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.subject} ({self.state})"

    @property
    def shown_state(self) -> str:
        """firing, acknowledged, silenced or resolved: what the pages and the API show."""
        if self.state == AlertState.RESOLVED:
            return "resolved"
        if self.silence_id is not None:
            return "silenced"
        return "acknowledged" if self.acknowledged_at is not None else "firing"


class Silence(models.Model):
    """Mutes a team's alerts whose labels match every matcher, from `starts_at` until
    `ends_at` (expiring one early sets `ends_at` to now)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    matchers = models.JSONField(default=list)  # ['region="eu-west-1"', 'severity=~"crit.*"']
    comment = models.CharField(max_length=500)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ends_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="silence_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"silence {self.pk} of team {self.team_id}"
