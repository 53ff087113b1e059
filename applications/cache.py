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

Optionally (KEELSON_PLACEMENT_USAGE_REFRESH seconds > 0) a background thread per process
reads those new figures every that many seconds for every team placed for in the last
minute (`UsageRefresher`), off the calls' path: a call then finds usage read less than
KEELSON_PLACEMENT_USAGE_MAX_AGE ago and only asks for spec changes. The bound on stale
usage is unchanged (a call whose team's usage is older than the maximum age reads it
itself, as without the thread); with the thread it is in practice the refresh interval
plus one pass. Spec changes (labels, taints, status, capacity...) are never left to it.

Rows written by the caller's own, still open transaction are reloaded again by the next
call (that transaction may roll back). No Redis is involved: placement never depends on a
cache server, and a change is visible to the next call as soon as it commits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from applications.candidates import Loaded, Prices, load
from applications.scheduler import HEALTHY, Candidate
from applications.table import Profiles, Table

logger = logging.getLogger(__name__)

# The changes this team's cache has not seen, with the requested CPU millis and memory
# bytes of each changed cluster of the team as of the same snapshot (NULL: not, or no
# longer, of the team): a usage change needs no second query. A subquery per change, by
# primary key: a join may read every cluster of the team to find 300 of them. Each way a
# change can be missed is its own index range (`changed`, rows read there, not joined
# back: the planner joined them to a scan of the whole table): one condition OR-ing them
# all read every change row of the team (18 ms at 10,000 clusters).
CHANGES = """
WITH now AS (
  SELECT pg_current_snapshot() AS snapshot,
         pg_current_xact_id_if_assigned()::text::bigint AS own
), changed AS (
  SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND spec_xid >= %(spec_from)s
  UNION SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND spec_xid = ANY(%(spec_pending)s)
  UNION SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND usage_xid >= %(usage_from)s
  UNION SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND usage_xid = ANY(%(usage_pending)s)
  UNION SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND spec_xid = (SELECT own FROM now)
  UNION SELECT team_id, cluster_id, spec_xid, usage_xid FROM placement_clusterchange
  WHERE team_id IN (%(team)s, 0) AND usage_xid = (SELECT own FROM now)
)
SELECT pg_snapshot_xmax(now.snapshot)::text::bigint,
       array(SELECT xid::text::bigint FROM pg_snapshot_xip(now.snapshot) AS xid),
       now.own, change.team_id, change.cluster_id, change.spec_xid, change.usage_xid,
       (SELECT array[cluster.requested_cpu_millis, cluster.requested_memory_bytes]
        FROM clusters_cluster AS cluster
        WHERE cluster.id = change.cluster_id AND cluster.team_id = %(team)s)
FROM now
LEFT JOIN changed AS change ON true
"""

# Only the usage ranges of CHANGES, for the background refresher (its own connection, in
# autocommit: no transaction of its own to account for).
USAGE = """
WITH now AS (
  SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
         array(SELECT xid::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS xid)
           AS pending
), changed AS (
  SELECT cluster_id FROM placement_clusterchange
  WHERE team_id = %(team)s AND usage_xid >= %(usage_from)s
  UNION SELECT cluster_id FROM placement_clusterchange
  WHERE team_id = %(team)s AND usage_xid = ANY(%(usage_pending)s)
)
SELECT now.xmax, now.pending, change.cluster_id,
       (SELECT array[cluster.requested_cpu_millis, cluster.requested_memory_bytes]
        FROM clusters_cluster AS cluster
        WHERE cluster.id = change.cluster_id AND cluster.team_id = %(team)s)
FROM now
LEFT JOIN changed AS change ON true
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
    # `ordered` as arrays (`applications.table`), replaced whole at every change.
    table: Table = field(default_factory=lambda: Table.of([]))
    changed_at: dict[str, datetime | None] = field(default_factory=dict)
    spec_seen: Seen = field(default_factory=Seen)
    usage_seen: Seen = field(default_factory=Seen)
    usage_read: float = float("-inf")  # time.monotonic() of the last usage refresh
    unsettled: set[int] = field(default_factory=set)  # written by an open transaction
    reload_all: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: float = float("-inf")  # time.monotonic() of the last call (the refresher's choice)

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
            positions: list[int] = []
            changed: dict[int, tuple[int, int]] = {}
            for cluster in spec & usage.keys():
                del usage[cluster]  # reloaded whole
            if usage:
                done.usage = self._reload_usage(usage, changed)
            if spec:
                self._reload(spec, now, positions, changed)
                done.reloaded = len(spec)
            self._update(positions, changed)
        self.spec_seen = seen
        if usage_due or whole:
            self.usage_seen, self.usage_read = seen, time.monotonic()
        self.unsettled = unsettled - {0}
        self.reload_all = reload_all
        return done

    def refresh_usage(self) -> int:
        """Read the requested figures changed since usage was last read and apply them (the
        background refresher's pass; the query runs outside the lock, so calls go on). A
        figure read here may be older than one a concurrent call reloaded with its cluster
        (a spec change): the next pass reads it again, as its write was not yet seen."""
        if self.prices is None:
            return 0  # never loaded: the first call loads everything
        since = self.usage_seen
        with connection.cursor() as cursor:
            cursor.execute(
                USAGE,
                {
                    "team": self.team_id,
                    "usage_from": since.xmax,
                    "usage_pending": list(since.pending),
                },
            )
            rows = cursor.fetchall()
        seen = Seen(rows[0][0], tuple(rows[0][1]))
        usage = {cluster: figures for _, _, cluster, figures in rows if figures is not None}
        with self.lock:
            if self.usage_seen != since or self.reload_all:
                return 0  # a call read usage meanwhile (newer), or reloads everything anyway
            changed: dict[int, tuple[int, int]] = {}
            count = self._reload_usage(usage, changed)
            self._update([], changed)
            self.usage_seen, self.usage_read = seen, time.monotonic()
            return count

    def _load_all(self, now: datetime) -> None:
        self.prices = Prices.on(now.date())
        loaded = load(team_id=self.team_id, prices=self.prices, moment=now)
        self.by_pk = {item.pk: item for item in loaded}
        self._index()

    def _reload(
        self, ids: set[int], now: datetime, positions: list[int], changed: dict[int, Any]
    ) -> None:
        """Reload clusters `ids`; the positions of those changed in place are added to
        `positions` (a table update follows), or everything is indexed again (and the
        `changed` usage is in the new table already)."""
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
                positions.append(self.position[name])
        if renamed:
            self._index()
            positions.clear()
            changed.clear()

    def _reload_usage(
        self, usage: dict[int, list[int]], changed: dict[int, tuple[int, int]]
    ) -> int:
        """Note requested CPU (millis) and memory (bytes) read by `refresh`, by cluster (the
        positions changed with their figures go to `changed`, for the table)."""
        count = 0
        for pk, (cpu_millis, memory) in usage.items():
            item = self.by_pk.get(pk)
            if item is None or item.requested == (cpu_millis, memory):
                continue
            item.requested = (cpu_millis, memory)
            changed[self.position[item.candidate.name]] = (cpu_millis, memory)
            count += 1
        return count

    def _update(self, positions: list[int], usage: dict[int, tuple[int, int]]) -> None:
        """The table with the candidates at `positions` as `ordered` has them now, and the
        requested figures `usage` by position (indexed again when profiles that no cluster
        has any more outnumber the clusters)."""
        if not positions and not usage:
            return
        if len(self.table.profiles.representatives) > 2 * len(self.ordered) + 1000:
            self._index()
            return
        table = self.table
        if usage:
            at = list(usage)
            table = table.with_usage(at, [usage[p][0] for p in at], [usage[p][1] for p in at])
        if positions:
            positions = sorted(set(positions))
            table = table.replaced(positions, [self.ordered[i] for i in positions])
        self.table = table

    def _index(self) -> None:
        items = sorted(self.by_pk.values(), key=attrgetter("candidate.name"))
        self.ordered = [item.refreshed() for item in items]
        self.position = {c.name: index for index, c in enumerate(self.ordered)}
        self.changed_at = {item.candidate.name: item.status_changed_at for item in items}
        self.table = Table.of(self.ordered, Profiles())


class CandidateCache:
    """The candidates of every team this process has placed for. One per process
    (`candidate_cache`); tests make their own to play two processes."""

    def __init__(self) -> None:
        self._teams: dict[int, TeamCandidates] = {}
        self._lock = threading.Lock()
        self._refresher: UsageRefresher | None = None

    def recent(self, seconds: float) -> list[TeamCandidates]:
        """The teams placed for in the last `seconds`."""
        since = time.monotonic() - seconds
        with self._lock:
            return [team for team in self._teams.values() if team.used >= since]

    def start_refresher(self, every: float) -> UsageRefresher:
        """The background usage refresher of this process, started if it is not running
        (a forked child has none of its parent's threads: it starts its own)."""
        with self._lock:
            running = self._refresher
            if running is None or not running.is_alive() or running.pid != os.getpid():
                running = self._refresher = UsageRefresher(self, every)
                running.start()
            return running

    def stop_refresher(self) -> None:
        with self._lock:
            running, self._refresher = self._refresher, None
        if running is not None and running.pid == os.getpid():
            running.stop()

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
        current: Mapping[str, int] | Collection[str],
        toleration_seconds: int,
        now: datetime | None = None,
    ) -> list[Candidate]:
        """The team's clusters sorted by name, fresh as of this call (`table`'s)."""
        return self.table(
            team_id=team_id, current=current, toleration_seconds=toleration_seconds, now=now
        ).candidates

    def table(
        self,
        *,
        team_id: int,
        current: Mapping[str, int] | Collection[str],
        toleration_seconds: int,
        now: datetime | None = None,
    ) -> Table:
        """The team's clusters sorted by name as a table, fresh as of this call; `current`
        (chosen by the previous decision: its replicas per cluster, or only the names)
        marked, with why an unhealthy one still keeps its place and the replicas the
        application holds there (what its own pods request is room for it:
        `capacity.room`)."""
        held = current if isinstance(current, Mapping) else dict.fromkeys(current, 0)
        now = now or timezone.now()
        every = settings.KEELSON_PLACEMENT_USAGE_REFRESH
        if every > 0:
            self.start_refresher(every)
        team = self.team(team_id)
        team.used = time.monotonic()
        with team.lock:
            team.refresh(now=now)
            table = team.table
            positions, marked = [], []
            for name, replicas in held.items():
                index = team.position.get(name)
                if index is None:
                    continue
                candidate = team.ordered[index]
                positions.append(index)
                marked.append(
                    replace(
                        candidate,
                        current=True,
                        held=replicas,
                        tolerated=tolerated(
                            candidate.status, team.changed_at[name], toleration_seconds, now
                        ),
                    )
                )
        return table.with_current(positions, marked)

    def clear(self) -> None:
        with self._lock:
            self._teams.clear()


class UsageRefresher(threading.Thread):
    """Every `every` seconds, the new requested figures of each team placed for in the last
    minute (`TeamCandidates.refresh_usage`), with a database connection of its own."""

    RECENT = 60.0

    def __init__(self, cache: CandidateCache, every: float) -> None:
        super().__init__(name="placement-usage", daemon=True)
        self.cache, self.every, self.pid = cache, every, os.getpid()
        self.passes = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.wait(self.every):
                self.run_once()
        finally:
            connection.close()  # this thread's own connection

    def run_once(self) -> None:
        for team in self.cache.recent(self.RECENT):
            try:
                team.refresh_usage()
            except Exception:  # the calls read usage themselves past its maximum age
                logger.exception("placement usage refresh failed for team %s", team.team_id)
                connection.close()
        self.passes += 1

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.join(timeout)


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
