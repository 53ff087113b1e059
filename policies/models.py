"""Policies, their rules, evaluation results (full history) and enforcement actions."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import slug_validator
from policies.choices import (
    ENFORCE_EFFECT,
    ActionKind,
    ActionStatus,
    ComplianceType,
    Mode,
    ReportFormat,
    ReportScope,
    ResultStatus,
    RuleKind,
    Severity,
    SourceEngine,
)
from policies.library import LATEST, PSS_VERSION_CHOICES, PSS_VERSIONS


class LivePolicies(models.Manager["Policy"]):
    def get_queryset(self) -> models.QuerySet[Policy]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Policy(models.Model):
    """What every targeted cluster must meet. `generation` grows on every change of what
    is checked, so results can say which version of the policy they judged.

    Deleting a policy keeps it (`deleted_at`) with its whole evaluation history: results
    are never lost. `objects` sees live policies only; `all_objects` sees every one."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="policies")
    name = models.CharField(max_length=63, validators=[slug_validator])
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    # Standards and control ids this policy implements: "pss-baseline", "cis-5.2.1", ...
    standards = models.JSONField(default=list, blank=True)
    # Targeting: clusters of the policy's team in any of these sets and/or matching the
    # selector; neither means every cluster of the team.
    cluster_sets = models.ManyToManyField("clusters.ClusterSet", blank=True, related_name="+")
    cluster_selector = models.CharField(max_length=1000, blank=True)
    # Target where this application of the team runs (its placement); none if it is gone.
    placement = models.CharField(max_length=63, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.INFORM)
    enabled = models.BooleanField(default=True)
    # The Pod Security Standards version a bundled PSS policy checks (as Pod Security
    # Admission's `enforce-version`): pinned, an upgrade of Keelson does not change its
    # verdicts; "latest" follows the newest version the library knows.
    pss_version = models.CharField(
        max_length=8, choices=[(v, v) for v in PSS_VERSION_CHOICES], default=LATEST
    )
    generation = models.PositiveIntegerField(default=1)
    bundled = models.BooleanField(default=False, help_text="Loaded from the bundled library.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who turned enforcement on (or last changed the enforcing policy): the sweep's
    # remediation is recorded as theirs.
    enforced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # An external policy (policies/external): results an engine the clusters run reported,
    # read at collection; read-only in Keelson. Blank for Keelson's own policies.
    source_engine = models.CharField(
        max_length=16, choices=SourceEngine.choices, blank=True, default="", db_default=""
    )
    # The engine's name for it: Kyverno's policy, "source/policy", Gatekeeper's "Kind/name".
    source_name = models.CharField(max_length=300, blank=True, default="", db_default="")
    # When no cluster of the team reported it any more (history kept); null while reported.
    gone_at = models.DateTimeField(null=True, blank=True)
    # Declared in a Git repository (gitops): {"repository": id, "name": ..., "commit": sha}.
    # The API and pages refuse edits while it is set (core.managed).
    managed_by = models.JSONField(null=True, blank=True, editable=False)

    all_objects = models.Manager()
    objects = LivePolicies()

    class Meta:
        ordering = ["team_id", "name"]
        verbose_name_plural = "policies"
        default_manager_name = "objects"
        base_manager_name = "all_objects"  # results keep reaching their (deleted) policy
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="policy_unique_name_per_team",
            ),
            models.CheckConstraint(
                condition=models.Q(mode__in=Mode.values), name="policy_mode_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=Severity.values), name="policy_severity_valid"
            ),
            models.UniqueConstraint(
                fields=["team", "source_engine", "source_name"],
                condition=models.Q(deleted_at__isnull=True) & ~models.Q(source_engine=""),
                name="policy_unique_external_source",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def external(self) -> bool:
        """Whether an engine on the clusters judges this policy (read-only here)."""
        return bool(self.source_engine)


class PolicyClusterMode(models.Model):
    """A policy's mode on one cluster, overriding the policy's own `mode` there: how a
    policy is promoted from inform to enforce cluster group by cluster group (an update
    run of kind `policy_mode`), or kept at inform on a few clusters. The effective mode
    of a policy on a cluster is this override if there is one, else the policy's mode
    (`policies.services.cluster_modes`)."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="cluster_modes")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=8, choices=Mode.choices)
    # Who set it: on an enforcing override, the sweep's remediation there is done for them
    # (as `Policy.enforced_by` for the policy's own mode).
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    set_at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["policy_id", "cluster_id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "cluster"], name="policyclustermode_once"),
            models.CheckConstraint(
                condition=models.Q(mode__in=Mode.values), name="policyclustermode_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} on {self.cluster_id}: {self.mode}"


class ClusterSetPin(models.Model):
    """A cluster set's pinned Pod Security Standards version (as Pod Security Admission's
    `enforce-version` label pins a namespace): the bundled PSS policies that are not pinned
    themselves judge the set's clusters at this version. A policy's own pin wins; a cluster
    in several pinned sets is judged at the oldest of their versions."""

    cluster_set = models.OneToOneField(
        "clusters.ClusterSet", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    pss_version = models.CharField(max_length=8, choices=[(v, v) for v in PSS_VERSIONS])
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.cluster_set_id}: {self.pss_version}"


class PolicyRule(models.Model):
    """One check of a policy.

    `match` selects objects: ``{"kinds": ["Pod", "apps/Deployment"], "namespaces": [...],
    "excludeNamespaces": [...], "labelSelector": "app=web"}``. Kinds are version-agnostic
    (`group/Kind`, core kinds bare): the served version is found by discovery. A rule over
    Pods also runs over the pod templates of workload controllers unless `autogen` is off.
    """

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=63, validators=[slug_validator])
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    match = models.JSONField(default=dict, blank=True)
    autogen = models.BooleanField(default=True)
    expression = models.TextField(blank=True)
    message = models.CharField(max_length=500, blank=True)
    compliance_type = models.CharField(max_length=16, choices=ComplianceType.choices, blank=True)
    object_template = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["policy_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "name"], name="policyrule_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id}/{self.name}"

    @property
    def enforce_effect(self) -> str:
        """What enforce mode does with this rule (`choices.ENFORCE_EFFECT`)."""
        return ENFORCE_EFFECT.get(RuleKind(self.kind), "") if self.kind in RuleKind.values else ""


class PolicyEvaluation(models.Model):
    """One outcome of one policy on one cluster. The newest row per (policy, cluster) is
    the current state, older ones are history. A new row is stored when the outcome
    changes (or on a forced evaluation); an evaluation that finds the same outcome again
    only moves the newest row's `checked_at` and inventory stamp, so a 10,000-cluster
    fleet swept every 10 minutes does not add half a million rows per sweep.
    `evaluated_at` is when this outcome was first found (what "as of" questions use)."""

    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="evaluations")
    # History outlives the cluster: deregistration sets `cluster` to null and the row keeps
    # the cluster's name; current-state queries skip such rows (the cluster is gone).
    cluster = models.ForeignKey(
        "clusters.Cluster",
        null=True,
        on_delete=models.SET_NULL,
        related_name="policy_evaluations",
    )
    cluster_name = models.CharField(max_length=63, default="")
    run_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=ResultStatus.choices)
    message = models.CharField(max_length=1000, blank=True)
    # [{rule, kind, namespace, name, message, controller}]
    violations = models.JSONField(default=list, blank=True)
    # [{rule, kind, namespace, name, message}]: objects a rule could not judge
    errors = models.JSONField(default=list, blank=True)
    # The lists keep the first MAX_LISTED entries (evaluation/outcomes.py); the totals are exact.
    violations_total = models.PositiveIntegerField(default=0)
    errors_total = models.PositiveIntegerField(default=0)
    objects_checked = models.PositiveIntegerField(default=0)
    policy_generation = models.PositiveIntegerField()
    inventory_stamp = models.CharField(max_length=64, blank=True)
    forced = models.BooleanField(default=False)
    evaluated_at = models.DateTimeField(db_index=True)
    # When an evaluation last found this same outcome (set at insert too; null on rows
    # stored before outcomes were deduplicated).
    checked_at = models.DateTimeField(null=True, blank=True)
    # Fingerprint of the outcome (status, message, counts, listed objects, generation).
    digest = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [
            # The newest result of each pair, in the order DISTINCT ON and the trend's
            # window read it, with the status: counting 500,000 pairs is an index-only
            # scan instead of a sort of the table.
            models.Index(
                fields=["policy", "cluster", "-evaluated_at", "-id"],
                include=["status"],
                name="evaluation_latest",
            ),
            models.Index(fields=["cluster", "-evaluated_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ResultStatus.values), name="evaluation_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} on {self.cluster_label}: {self.status}"

    @property
    def cluster_label(self) -> str:
        """The cluster's name, or the name kept once it was deregistered."""
        return self.cluster.name if self.cluster is not None else self.cluster_name

    @property
    def violations_partial(self) -> bool:
        """Whether `violations` lists only the first of `violations_total` objects."""
        return len(self.violations) < self.violations_total

    @property
    def errors_partial(self) -> bool:
        return len(self.errors) < self.errors_total

    @property
    def listing_note(self) -> str:
        """ "first 500 of 1,490 violating objects listed" when a list is cut, else ""."""
        if self.violations_partial and self.policy.source_engine == SourceEngine.GATEKEEPER:
            # Gatekeeper's own cap (--constraint-violations-limit), not Keelson's
            listed = len(self.violations)
            return f"{listed:,} of {self.violations_total:,} (Gatekeeper lists {listed:,})"
        notes = []
        if self.violations_partial:
            notes.append(
                f"first {len(self.violations):,} of {self.violations_total:,} violating objects"
            )
        if self.errors_partial:
            notes.append(f"first {len(self.errors):,} of {self.errors_total:,} objects not judged")
        return f"{' and '.join(notes)} listed" if notes else ""


class ComplianceState(models.Model):
    """The newest outcome of each (policy, cluster) pair: kept by a trigger on
    PolicyEvaluation (migration 0012), never written by Python. It tells the trigger
    which outcome a new row replaces, and which row's detachment (deregistration) ends a
    pair. No foreign key constraints: the trigger removes rows as their evaluations go."""

    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(
        Policy, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    evaluation = models.OneToOneField(
        PolicyEvaluation, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    status = models.CharField(max_length=16)
    evaluated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "cluster"], name="compliance_state_pair")
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} on {self.cluster_id}: {self.status}"


class ComplianceDelta(models.Model):
    """How many (policy, cluster) pairs entered (+) or left (-) a status on a day (UTC),
    appended by the PolicyEvaluation trigger (migration 0012) and folded together by
    `policies.services.compliance_counts.compact`. Their sum is the current count per
    status; the sums after a day give the counts as of that day's end (the overview's
    trend). Append-only, so concurrent sweeps never wait on one another's counters."""

    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    day = models.DateField()
    status = models.CharField(max_length=16)
    delta = models.IntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["policy", "day"],
                include=["status", "delta"],
                name="compliance_delta_policy",
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} {self.day}: {self.status} {self.delta:+d}"


class EnforcementAction(models.Model):
    """What enforcement did to one object of one cluster (a dry run stores nothing)."""

    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="actions")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    rule_name = models.CharField(max_length=63)
    run_id = models.UUIDField(db_index=True)
    action = models.CharField(max_length=8, choices=ActionKind.choices)
    status = models.CharField(max_length=16, choices=ActionStatus.choices)
    # {"apiVersion", "kind", "namespace", "name"}
    target = models.JSONField(default=dict)
    message = models.CharField(max_length=1000, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["policy", "cluster", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target} ({self.status})"


class ReportDefinition(models.Model):
    """A compliance report generated on a schedule (a django-celery-beat crontab)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[slug_validator])
    scope = models.CharField(max_length=16, choices=ReportScope.choices, default=ReportScope.FLEET)
    # The cluster set, cluster or standard the scope names ("" for the fleet).
    scope_value = models.CharField(max_length=100, blank=True)
    period_days = models.PositiveSmallIntegerField(default=7)
    formats = models.JSONField(default=list)
    recipients = models.JSONField(default=list, blank=True)
    # Cron fields "minute hour day-of-month month day-of-week", in UTC.
    schedule = models.CharField(max_length=100, default="0 6 * * 1")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    enabled = models.BooleanField(default=True)
    # Set while a Git repository declares it (core.managed): edits from the API and pages
    # are refused.
    managed_by = models.JSONField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="reportdef_unique_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name


class ComplianceReport(models.Model):
    """One generated report: its numbers, and a file per format."""

    id = models.BigAutoField(primary_key=True)
    definition = models.ForeignKey(
        ReportDefinition, on_delete=models.CASCADE, related_name="reports"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    generated_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict)
    mailed_to = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-period_end", "-id"]
        constraints = [
            # A redelivered or doubled beat message finds the report already there.
            models.UniqueConstraint(
                fields=["definition", "period_end"], name="report_unique_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition_id} until {self.period_end:%Y-%m-%d %H:%M}"


class ReportFile(models.Model):
    report = models.ForeignKey(ComplianceReport, on_delete=models.CASCADE, related_name="files")
    format = models.CharField(max_length=8, choices=ReportFormat.choices)
    content_type = models.CharField(max_length=100)
    content = models.BinaryField()
    size = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["report", "format"], name="reportfile_unique_format")
        ]

    def __str__(self) -> str:
        return f"{self.report_id}.{self.format}"
