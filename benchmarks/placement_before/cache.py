# ruff: noqa
# mypy: ignore-errors
# Frozen copy of today's scheduler (issue 20) for the placement benchmark: see __init__.py.
"""Each team's placement candidates kept in memory between calls, as the schedulers of OCM
and Karmada keep informer caches, instead of reading and pricing 10,000 rows per call.

Coherence across processes comes from the database itself: triggers (migration 0003)
record, per cluster, the transaction id of its last change in `ClusterChange`, whoever
wrote it (services, collection, agents, the admin, a queryset `update()`). Every call asks
in one indexed query for the changes its previous refresh could not see: those of
transactions that had not finished by that refresh's snapshot (`xid >= xmax`, or one of
the snapshot's in-progress ids), and reloads only those clusters. Requested CPU/memory,
which collection moves all the time, is re-read the same way at most every
KEELSON_PLACEMENT_USAGE_MAX_AGE seconds, and only for the clusters whose figures changed:
the same query returns their new figures, and only what depends on them is derived again.

Rows written by the caller's own, still open transaction are reloaded again by the next
call (that transaction may roll back). No Redis is involved: placement never depends on a
cache server, and a change is visible to the next call as soon as it commits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter

from django.conf import settings
from django.db import connection
from django.utils import timezone

from benchmarks.placement_before.candidates import Loaded, Prices, load, requested, with_usage
from benchmarks.placement_before.scheduler import HEALTHY, Candidate

# The changes this team's cache has not seen, with the requested CPU millis and memory
# bytes of each changed cluster of the team as of the same snapshot (NULL: not, or no
# longer, of the team): a usage change needs no second query. A subquery per change, by
# primary key: a join may read every cluster of the team to find 300 of them.
CHANGES = """
SELECT pg_snapshot_xmax(now.snapshot)::text::bigint,
       array(SELECT xid::text::bigint FROM pg_snapshot_xip(now.snapshot) AS xid),
       now.own, change.team_id, change.cluster_id, change.spec_xid, change.usage_xid,
       (SELECT array[cluster.requested_cpu_millis, cluster.requested_memory_bytes]
        FROM clusters_cluster AS cluster
        WHERE cluster.id = change.cluster_id AND cluster.team_id = %(team)s)
FROM (SELECT pg_current_snapshot() AS snapshot,
             pg_current_xact_id_if_assigned()::text::bigint AS own) AS now
LEFT JOIN placement_clusterchange AS change
  ON change.team_id IN (%(team)s, 0)
  AND (change.spec_xid >= %(spec_from)s OR change.spec_xid = ANY(%(spec_pending)s)
       OR change.usage_xid >= %(usage_from)s OR change.usage_xid = ANY(%(usage_pending)s)
       OR change.spec_xid = now.own OR change.usage_xid = now.own)
"""


@dataclass(frozen=True)
class Seen:
    """What a snapshot had seen: every transaction below `xmax` but those `pending`."""

    xmax: int = 0
    pending: tuple[int, ...] = ()

    def missed(self, xid: int) -> bool:
        return xid >= self.xmax or xid in self.pending


NOTHING = Seen(2**62)  # not looking: no transaction id reaches it


@dataclass
class Refresh:
    """What one refresh did (for tests and the benchmark)."""

    whole: bool = False
    reloaded: int = 0
    usage: int = 0


@dataclass
class TeamCandidates:
    """One team's candidates, sorted by name, with what the cache needs to refresh them."""

    team_id: int
    prices: Prices | None = None
    by_pk: dict[int, Loaded] = field(default_factory=dict)
    ordered: list[Candidate] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    changed_at: dict[str, datetime | None] = field(default_factory=dict)
    spec_seen: Seen = field(default_factory=Seen)
    usage_seen: Seen = field(default_factory=Seen)
    usage_read: float = float("-inf")  # time.monotonic() of the last usage refresh
    unsettled: set[int] = field(default_factory=set)  # written by an open transaction
    reload_all: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, *, now: datetime) -> Refresh:
        done = Refresh()
        usage_due = time.monotonic() - self.usage_read >= settings.KEELSON_PLACEMENT_USAGE_MAX_AGE
        usage_seen = self.usage_seen if usage_due else NOTHING
        with connection.cursor() as cursor:
            cursor.execute(
                CHANGES,
                {
                    "team": self.team_id,
                    "spec_from": self.spec_seen.xmax,
                    "spec_pending": list(self.spec_seen.pending),
                    "usage_from": usage_seen.xmax,
                    "usage_pending": list(usage_seen.pending),
                },
            )
            rows = cursor.fetchall()
        seen = Seen(rows[0][0], tuple(rows[0][1]))
        own = rows[0][2]
        whole = self.reload_all or self.prices is None or self.prices.day != now.date()
        spec: set[int] = set(self.unsettled)
        usage: dict[int, list[int]] = {}  # cluster: requested CPU millis, memory bytes
        unsettled: set[int] = set()
        reload_all = False
        for _, _, _, team, cluster, spec_xid, usage_xid, requested_now in rows:
            if team is None:
                continue  # no change at all: the row of the outer join
            # This transaction's own change: read now, and again next time (it may roll back).
            own_change = own is not None and own in (spec_xid, usage_xid)
            if own_change:
                unsettled.add(cluster)
                reload_all = reload_all or cluster == 0
            if cluster == 0:
                whole = whole or own_change or self.spec_seen.missed(spec_xid)
            elif own_change or self.spec_seen.missed(spec_xid):
                spec.add(cluster)
            elif usage_seen.missed(usage_xid) and requested_now is not None:
                usage[cluster] = requested_now
        if whole:
            self._load_all(now)
            done.whole = True
            done.reloaded = len(self.by_pk)
        else:
            if spec:
                self._reload(spec, now)
                done.reloaded = len(spec)
            for cluster in spec & usage.keys():
                del usage[cluster]  # reloaded whole
            if usage:
                done.usage = self._reload_usage(usage)
        self.spec_seen = seen
        if usage_due or whole:
            self.usage_seen, self.usage_read = seen, time.monotonic()
        self.unsettled = unsettled - {0}
        self.reload_all = reload_all
        return done

    def _load_all(self, now: datetime) -> None:
        self.prices = Prices.on(now.date())
        loaded = load(team_id=self.team_id, prices=self.prices, moment=now)
        self.by_pk = {item.pk: item for item in loaded}
        self._index()

    def _reload(self, ids: set[int], now: datetime) -> None:
        assert self.prices is not None
        loaded = {
            item.pk: item
            for item in load(team_id=self.team_id, prices=self.prices, moment=now, ids=ids)
        }
        renamed = False  # added, deleted, moved to another team or renamed: sort again
        for pk in ids:
            before, after = self.by_pk.pop(pk, None), loaded.get(pk)
            if after is None:
                renamed = renamed or before is not None
                continue
            self.by_pk[pk] = after
            name = after.candidate.name
            if before is None or before.candidate.name != name:
                renamed = True
            elif not renamed:
                self.ordered[self.position[name]] = after.candidate
                self.changed_at[name] = after.status_changed_at
        if renamed:
            self._index()

    def _reload_usage(self, usage: dict[int, list[int]]) -> int:
        """Apply requested CPU (millis) and memory (bytes) read by `refresh`, by cluster."""
        changed = 0
        for pk, (cpu_millis, memory) in usage.items():
            item = self.by_pk.get(pk)
            if item is None:
                continue
            candidate = item.candidate
            figures = requested(cpu_millis, memory)
            if (candidate.requested_cpu, candidate.requested_memory) == figures:
                continue
            item.candidate = with_usage(candidate, figures)
            self.ordered[self.position[candidate.name]] = item.candidate
            changed += 1
        return changed

    def _index(self) -> None:
        items = sorted(self.by_pk.values(), key=attrgetter("candidate.name"))
        self.ordered = [item.candidate for item in items]
        self.position = {c.name: index for index, c in enumerate(self.ordered)}
        self.changed_at = {item.candidate.name: item.status_changed_at for item in items}


class CandidateCache:
    """The candidates of every team this process has placed for. One per process
    (`candidate_cache`); tests make their own to play two processes."""

    def __init__(self) -> None:
        self._teams: dict[int, TeamCandidates] = {}
        self._lock = threading.Lock()

    def team(self, team_id: int) -> TeamCandidates:
        with self._lock:
            found = self._teams.get(team_id)
            if found is None:
                found = self._teams[team_id] = TeamCandidates(team_id)
            return found

    def candidates(
        self,
        *,
        team_id: int,
        current: set[str],
        toleration_seconds: int,
        now: datetime | None = None,
    ) -> list[Candidate]:
        """The team's clusters sorted by name, fresh as of this call; `current` (chosen by
        the previous decision) marked, with why an unhealthy one still keeps its place."""
        now = now or timezone.now()
        team = self.team(team_id)
        with team.lock:
            team.refresh(now=now)
            chosen = list(team.ordered)
            for name in current:
                index = team.position.get(name)
                if index is None:
                    continue
                candidate = chosen[index]
                chosen[index] = replace(
                    candidate,
                    current=True,
                    tolerated=tolerated(
                        candidate.status, team.changed_at[name], toleration_seconds, now
                    ),
                )
        return chosen

    def clear(self) -> None:
        with self._lock:
            self._teams.clear()


def tolerated(
    status: str, changed_at: datetime | None, toleration_seconds: int, now: datetime
) -> str:
    """Why a chosen cluster that is no longer healthy keeps its place (empty: it does not)."""
    if status in HEALTHY or changed_at is None:
        return ""
    age = int((now - changed_at).total_seconds())
    if age >= toleration_seconds:
        return ""
    return f"{status} for {age}s, tolerated up to {toleration_seconds}s"


candidate_cache = CandidateCache()
