"""Recording the results of engines the clusters run (Kyverno, Policy WG report producers,
Gatekeeper) in the ledger, as read-only external policies.

Each collection of a push cluster sends its clusters here (by task name, from clusters).
Every external policy a cluster reports becomes one Keelson policy of the cluster's team
(created at first sight, `source_engine` and `source_name` say which), and its outcome
there one result in the same table as Keelson's own, written only when it changed
(`evaluation.store`): history, compliance, pages and reports treat both alike.

A policy a cluster reported before and no longer does gets an error result there ("no
longer reported"), so its last verdict does not linger in the compliance figures; once
no cluster of the team reports it, the policy is marked gone (`gone_at`), its history
kept. Reported again, it is back. External policies are never evaluated or enforced by
Keelson, and cannot be edited or deleted (`refuse_external`)."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import Cluster
from clusters.services.credentials import cluster_api_clients
from core.db.locks import advisory_try_locks, advisory_unlocks
from kube.client import ClusterConnectError
from policies.choices import Mode, ResultStatus, SourceEngine
from policies.external.parsing import Finding
from policies.external.reading import EngineRead, read_engines
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.outcomes import Outcome, digest
from policies.services.evaluation.reading import cluster_reader, discovery_key
from policies.services.evaluation.store import Last, last_results, store

logger = logging.getLogger(__name__)
LOCK_CLASS = 0x657874  # "ext": one read of a cluster's engines at a time
READ_THREADS = 8
NOT_REPORTED = "No longer reported on this cluster."
_PREFIX: dict[str, str] = {
    SourceEngine.KYVERNO: "kyverno",
    SourceEngine.GATEKEEPER: "gatekeeper",
    SourceEngine.POLICY_REPORT: "report",
}


def external_name(engine: str, source_name: str, taken: set[str]) -> str:
    """A policy name for an external policy: "kyverno-require-labels",
    "gatekeeper-k8srequiredlabels-ns-must-have-gk"; a hash of the source is appended when
    the name is taken or had to be cut to 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", source_name.lower()).strip("-") or "policy"
    base = f"{_PREFIX.get(engine, 'external')}-{slug}"
    if len(base) <= 63 and base not in taken:
        return base
    suffix = hashlib.blake2b(f"{engine}:{source_name}".encode(), digest_size=4).hexdigest()
    return f"{base[:54].rstrip('-')}-{suffix}"


def _external_policy(team: Team, finding: Finding) -> Policy:
    """The team's policy for an external one, created (and audited) at first sight. A
    worker recording another cluster of the team at the same moment may create it first."""
    for _ in range(3):
        found = Policy.objects.filter(
            team=team, source_engine=finding.engine, source_name=finding.source_name
        ).first()
        if found is not None:
            return found
        taken = set(Policy.objects.filter(team=team).values_list("name", flat=True))
        try:
            with transaction.atomic():
                policy = Policy.objects.create(
                    team=team,
                    name=external_name(finding.engine, finding.source_name, taken),
                    description=finding.description,
                    severity=finding.severity,
                    mode=Mode.INFORM,
                    source_engine=finding.engine,
                    source_name=finding.source_name,
                )
                audit_record(
                    actor=None,
                    action="policy.external.create",
                    target=policy,
                    team=team,
                    detail={
                        "name": policy.name,
                        "engine": finding.engine,
                        "source": finding.source_name,
                    },
                )
                return policy
        except IntegrityError:
            continue  # created meanwhile (or its name was): look again
    raise RuntimeError(f"could not record external policy {finding.source_name}")


def _outcome(
    policy: Policy,
    cluster: Cluster,
    run_id: uuid.UUID,
    finding: Finding | None = None,
    *,
    error: str = "",
) -> Outcome:
    now = timezone.now()
    row = Outcome(policy, cluster, run_id, policy.generation, "", False, now, now)
    if finding is None:
        row.status, row.message = ResultStatus.ERROR, error[:1000]
    else:
        row.status, row.message = finding.status, finding.message[:1000]
        row.violations, row.errors = finding.violations, finding.errors
        row.violations_total, row.errors_total = finding.violations_total, finding.errors_total
        row.objects_checked = finding.objects_checked
    row.digest = digest(row)
    return row


def _read(target: tuple[Cluster, Any]) -> EngineRead | ClusterConnectError | Exception:
    cluster, api = target
    try:
        return read_engines(cluster_reader(cluster, api), discovery_key(cluster))
    except ClusterConnectError as error:
        return error
    except Exception as error:  # one cluster's failure never stops the others
        logger.exception("reading the engines of cluster %s failed", cluster.name)
        return error


def clusters_external_collect(*, cluster_ids: list[int]) -> dict[str, int]:
    """Read and record the engines' results of push-mode clusters; counts of what was
    done. A cluster another worker is reading is left to the next collection."""
    clusters = list(
        Cluster.objects.filter(pk__in=cluster_ids, mode=ClusterMode.PUSH)
        .select_related("team")
        .order_by("pk")
    )
    counts = {"clusters": 0, "results_written": 0, "failed": 0}
    if not clusters:
        return counts
    held = advisory_try_locks(LOCK_CLASS, [c.pk for c in clusters])
    try:
        locked = [c for c in clusters if c.pk in set(held)]
        targets, unbuilt = cluster_api_clients(clusters=locked)
        reads: list[tuple[Cluster, EngineRead | Exception]] = list(unbuilt)
        if targets:
            with ThreadPoolExecutor(
                max_workers=min(READ_THREADS, len(targets)), thread_name_prefix="engines"
            ) as pool:
                reads += zip((c for c, _ in targets), pool.map(_read, targets), strict=True)
        # Teams with external policies already: the others' clusters without engines need
        # no query at all (most of a fleet, at every collection).
        recorded = set(
            Policy.objects.filter(team_id__in={c.team_id for c in locked})
            .exclude(source_engine="")
            .order_by()
            .values_list("team_id", flat=True)
            .distinct()
        )
        for cluster, read in reads:
            counts["clusters"] += 1
            if isinstance(read, Exception):
                counts["failed"] += 1
            elif not (read.reports or read.constraints) and cluster.team_id not in recorded:
                continue
            counts["results_written"] += cluster_record_external(cluster=cluster, read=read)
    finally:
        advisory_unlocks(LOCK_CLASS, held)
    return counts


def cluster_record_external(*, cluster: Cluster, read: EngineRead | Exception) -> int:
    """Record one cluster's engine results; the number of result rows written (an
    unchanged cluster writes none)."""
    team = cluster.team
    known = {
        (p.source_engine, p.source_name): p
        for p in Policy.objects.filter(team=team).exclude(source_engine="")
    }
    last = last_results([cluster.pk], [p.pk for p in known.values()]) if known else {}
    run_id = uuid.uuid4()
    rows: list[Outcome] = []
    reported: list[Policy] = []
    vanished: list[Policy] = []
    if isinstance(read, Exception):
        why = read.message if isinstance(read, ClusterConnectError) else type(read).__name__
        rows = [
            _outcome(p, cluster, run_id, error=f"The engines' results could not be read: {why}")
            for p in known.values()
            if (p.pk, cluster.pk) in last
        ]
    else:
        findings = read.findings()
        for key, finding in sorted(findings.items()):
            policy = known.get(key) or _external_policy(team, finding)
            reported.append(policy)
            rows.append(_outcome(policy, cluster, run_id, finding))
        for key, policy in known.items():
            if key not in findings and (policy.pk, cluster.pk) in last:
                vanished.append(policy)
                rows.append(_outcome(policy, cluster, run_id, error=NOT_REPORTED))
    written = _changed(rows, last)
    store(rows, False, last)
    _returned([p for p in reported if p.gone_at is not None])
    _mark_gone([p.pk for p in vanished])
    return written


def _changed(rows: Iterable[Outcome], last: dict[tuple[int, int], Last]) -> int:
    return sum(
        1
        for row in rows
        if (found := last.get((row.policy_id, row.cluster_id))) is None
        or found.digest != row.digest
    )


def _returned(policies: list[Policy]) -> None:
    """Policies marked gone that a cluster reports again."""
    for policy in policies:
        with transaction.atomic():
            Policy.objects.filter(pk=policy.pk).update(gone_at=None, updated_at=timezone.now())
            audit_record(
                actor=None,
                action="policy.external.returned",
                target=policy,
                team=policy.team,
                detail={"name": policy.name},
            )


def _mark_gone(policy_ids: list[int]) -> None:
    """Mark gone the policies that no cluster reports any more: each newest result on a
    (still registered) cluster says "no longer reported"."""
    for policy in Policy.objects.filter(pk__in=policy_ids, gone_at__isnull=True).select_related(
        "team"
    ):
        newest = (
            PolicyEvaluation.objects.filter(policy=policy, cluster__isnull=False)
            .order_by("cluster_id", "-evaluated_at", "-id")
            .distinct("cluster_id")
            .values_list("message", flat=True)
        )
        if any(message != NOT_REPORTED for message in newest):
            continue
        with transaction.atomic():
            Policy.objects.filter(pk=policy.pk).update(
                gone_at=timezone.now(), updated_at=timezone.now()
            )
            audit_record(
                actor=None,
                action="policy.external.gone",
                target=policy,
                team=policy.team,
                detail={"name": policy.name, "source": policy.source_name},
            )
