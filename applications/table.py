"""The candidates of a decision as arrays, for `applications.scheduler`: one row of figures
per field (`Candidate.floats` and the replicas held), one profile id per cluster, and, per
placement's predicates, each profile's verdict kept between calls.

At 10,000 clusters a Python loop that reads every cluster costs milliseconds; the arrays
are read in C. The candidate cache (`applications.cache`) keeps one table per team and
updates it copy-on-write (a call in progress keeps its own); a call marks the clusters the
application is already on (`with_current`) in a view that copies only what they change.
A list of candidates becomes a table with `Table.of`: every decision goes through here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from applications.scheduler import Candidate

# The rows of `Table.data`: `Candidate.floats` by position, then the replicas held and
# the allocatable CPU in millis (exact in a float; for `Table.with_usage`).
LEAST_ALLOCATED, CURRENT, ALLOCATABLE_CPU, ALLOCATABLE_MEMORY = 0, 1, 2, 3
REQUESTED_CPU, REQUESTED_MEMORY, CPU_PRICE, RAM_PRICE, FREE_CPU, FREE_MEMORY = 4, 5, 6, 7, 8, 9
HELD, ALLOCATABLE_CPU_MILLIS = 10, 11
ROWS = 12
THOUSAND = Decimal(1000)
# Distinct predicate sets whose verdicts a team's profiles keep (then forgotten at once).
MAX_VERDICTS = 256

# A profile's verdict: why it is excluded ((predicate, reason); None: it is not), how many
# of its taints it avoids (PreferNoSelect, not tolerated), and until when (epoch seconds)
# the verdict holds (a toleration with tolerationSeconds expires; inf: for ever).
Verdict = tuple[tuple[str, str] | None, int, float]
Judge = Callable[["Candidate"], Verdict]


def _column(candidates: Sequence[Candidate]) -> np.ndarray:
    """The candidates' figures, `ROWS` by len(candidates)."""
    if not candidates:
        return np.zeros((ROWS, 0))
    return np.array(
        [(*c.floats, c.held, float(c.allocatable_cpu * THOUSAND)) for c in candidates],
        dtype=np.float64,
    ).T.copy()


def least_allocated(
    free_cpu: Any, allocatable_cpu: Any, free_memory: Any, allocatable_memory: Any
) -> Any:
    """The float of `Candidate.least_allocated` from the floats of its terms, for a cluster
    (floats) or many (arrays): the same IEEE operations in the same order either way, so
    equal figures give equal floats however they were derived."""
    if isinstance(free_cpu, np.ndarray):
        cpu = np.divide(
            free_cpu, allocatable_cpu, out=np.zeros(len(free_cpu)), where=allocatable_cpu != 0
        )
        memory = np.divide(
            free_memory,
            allocatable_memory,
            out=np.zeros(len(free_memory)),
            where=allocatable_memory != 0,
        )
        return (cpu + memory) / 2
    cpu = free_cpu / allocatable_cpu if allocatable_cpu else 0.0
    memory = free_memory / allocatable_memory if allocatable_memory else 0.0
    return (cpu + memory) / 2


@dataclass(frozen=True)
class Verdicts:
    """One predicate set's verdicts by profile id (`reasons[0]` is None: not excluded)."""

    reasons: list[tuple[str, str] | None]
    reason_ids: np.ndarray
    avoided: np.ndarray
    until: np.ndarray


class Profiles:
    """Every distinct profile (all the predicates read but capacity) of a team's clusters,
    by id, with the verdicts of each predicate set seen. Ids are only added (under the
    cache's team lock, or by one caller); verdicts are replaced whole, never changed in
    place, so a call reads a consistent set."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.representatives: list[Candidate] = []
        self.verdicts: dict[Any, Verdicts] = {}

    def id(self, candidate: Candidate) -> int:
        found = self.ids.get(candidate.profile)
        if found is None:
            found = self.ids[candidate.profile] = len(self.representatives)
            self.representatives.append(candidate)
        return found

    def judged(self, key: Any, judge: Judge, now: float) -> Verdicts:
        """The verdicts of predicate set `key` (`judge`) for every profile: those kept, and
        those of new profiles or expired verdicts judged now."""
        count = len(self.representatives)
        kept = self.verdicts.get(key)
        if kept is not None and len(kept.reason_ids) == count and not (kept.until <= now).any():
            return kept
        reasons: list[tuple[str, str] | None] = list(kept.reasons) if kept else [None]
        ids = np.zeros(count, dtype=np.int64)
        avoided = np.zeros(count, dtype=np.int64)
        until = np.full(count, np.inf)
        start = 0
        if kept is not None:
            start = len(kept.reason_ids)
            ids[:start], avoided[:start], until[:start] = kept.reason_ids, kept.avoided, kept.until
        redo = list(range(start, count))
        if kept is not None:
            redo = np.flatnonzero(until[:start] <= now).tolist() + redo
        number = {reason: index for index, reason in enumerate(reasons)}
        for index in redo:
            reason, avoids, expires = judge(self.representatives[index])
            found = number.get(reason)
            if found is None:
                found = number[reason] = len(reasons)
                reasons.append(reason)
            ids[index], avoided[index], until[index] = found, avoids, expires
        verdicts = Verdicts(reasons, ids, avoided, until)
        if len(self.verdicts) >= MAX_VERDICTS:
            self.verdicts = {}
        self.verdicts = {**self.verdicts, key: verdicts}
        return verdicts


class Table:
    """Candidates sorted by name with their figures (`data`, `ROWS` x clusters) and profile
    ids; `local` holds the profiles of this call's current clusters (ids from
    `len(profiles.representatives)` on at the time of `with_current`)."""

    def __init__(
        self,
        candidates: list[Candidate],
        data: np.ndarray,
        profile_ids: np.ndarray,
        profiles: Profiles,
        local: list[Candidate] | None = None,
        rows: dict[int, np.ndarray] | None = None,
        pending: np.ndarray | None = None,
    ) -> None:
        self._listed = candidates
        # Requested CPU millis and memory bytes (rows 0 and 1; -1: none) of clusters whose
        # `data` has them but whose candidate in `_listed` is older: the candidate is
        # derived again when first read (`candidate`). Arrays: copied in microseconds.
        self.pending = pending
        self.data = data
        self.rows = rows or {}
        self.profile_ids = profile_ids
        self.profiles = profiles
        self.local = local or []
        self.shared = len(profiles.representatives) if local else None

    @classmethod
    def of(cls, candidates: list[Candidate], profiles: Profiles | None = None) -> Table:
        """The table of `candidates` (sorted by name)."""
        profiles = profiles or Profiles()
        ids = np.fromiter(map(profiles.id, candidates), np.int64, len(candidates))
        return cls(list(candidates), _column(candidates), ids, profiles)

    def __len__(self) -> int:
        return len(self._listed)

    def candidate(self, position: int) -> Candidate:
        """The cluster at `position`, with its latest requested figures."""
        pending = self.pending
        if pending is None or pending[0, position] < 0:
            return self._listed[position]
        cpu, memory = pending[:, position].tolist()
        candidate = self._listed[position].with_requested(Decimal(cpu) / THOUSAND, Decimal(memory))
        # The candidate first, then the figures cleared: whoever copies the figures before
        # the candidates (`replaced`, `with_usage`) loses neither.
        self._listed[position] = candidate
        pending[:, position] = -1
        return candidate

    @property
    def candidates(self) -> list[Candidate]:
        """Every cluster, in name order."""
        if self.pending is not None:
            for position in np.flatnonzero(self.pending[0] >= 0).tolist():
                self.candidate(position)
        return self._listed

    def _pending_without(self, at: np.ndarray) -> np.ndarray | None:
        if self.pending is None:
            return None
        pending = self.pending.copy()
        pending[:, at] = -1
        return pending

    def with_usage(self, positions: list[int], cpu_millis: list[int], memory: list[int]) -> Table:
        """This table with new requested CPU (millis) and memory (bytes) at `positions`
        (clusters whose allocatable CPU is `ALLOCATABLE_CPU_MILLIS` / 1000), copy-on-write:
        the figures are derived in arrays, as `Candidate` derives them one by one, and the
        candidates themselves only when read."""
        if not positions:
            return self
        at = np.array(positions, dtype=np.int64)
        data = self.data.copy()
        cpu = np.array(cpu_millis, dtype=np.float64)
        used_memory = np.array(memory, dtype=np.float64)
        allocatable_millis = data[ALLOCATABLE_CPU_MILLIS, at]
        allocatable_cpu = data[ALLOCATABLE_CPU, at]
        allocatable_memory = data[ALLOCATABLE_MEMORY, at]
        free_cpu = np.maximum(allocatable_millis - cpu, 0.0) / 1000.0
        free_memory = np.maximum(allocatable_memory - used_memory, 0.0)
        data[REQUESTED_CPU, at] = cpu / 1000.0
        data[REQUESTED_MEMORY, at] = used_memory
        data[FREE_CPU, at] = free_cpu
        data[FREE_MEMORY, at] = free_memory
        data[LEAST_ALLOCATED, at] = least_allocated(
            free_cpu, allocatable_cpu, free_memory, allocatable_memory
        )
        if self.pending is None:
            pending = np.full((2, len(self)), -1, dtype=np.int64)
        else:
            pending = self.pending.copy()
        pending[0, at] = cpu_millis
        pending[1, at] = memory
        return Table(list(self._listed), data, self.profile_ids, self.profiles, pending=pending)

    def row(self, field: int) -> np.ndarray:
        found = self.rows.get(field)
        return self.data[field] if found is None else found

    def replaced(self, positions: list[int], candidates: list[Candidate]) -> Table:
        """This table with the clusters at `positions` replaced (same names), copy-on-write:
        a call that holds this table keeps reading it unchanged."""
        at = np.array(positions, dtype=np.int64)
        # Pending figures before the candidates (`candidate` does the reverse): a candidate
        # another thread derives meanwhile is derived again, never lost.
        pending = self._pending_without(at)
        listed = list(self._listed)
        for position, candidate in zip(positions, candidates, strict=True):
            listed[position] = candidate
        data = self.data.copy()
        ids = self.profile_ids.copy()
        if positions:
            data[:, at] = _column(candidates)
            ids[at] = np.fromiter(map(self.profiles.id, candidates), np.int64, len(candidates))
        return Table(listed, data, ids, self.profiles, pending=pending)

    def with_current(self, positions: list[int], candidates: list[Candidate]) -> Table:
        """A view for one call with the clusters at `positions` replaced by `candidates`,
        the same clusters marked current (their flags, replicas held and tolerated status
        are this application's): only what that changes is copied (the rows CURRENT and
        HELD, the profile ids)."""
        if not positions:
            return self
        at = np.array(positions, dtype=np.int64)
        pending = self._pending_without(at)  # (before the candidates: see `replaced`)
        listed = list(self._listed)
        for position, candidate in zip(positions, candidates, strict=True):
            listed[position] = candidate
        rows = {CURRENT: self.data[CURRENT].copy(), HELD: self.data[HELD].copy()}
        rows[CURRENT][at] = [float(c.current) for c in candidates]
        rows[HELD][at] = [float(c.held) for c in candidates]
        ids = self.profile_ids.copy()
        base = len(self.profiles.representatives)
        local: list[Candidate] = []
        seen: dict[str, int] = {}
        for index, candidate in zip(positions, candidates, strict=True):
            number = seen.get(candidate.profile)
            if number is None:
                number = seen[sys.intern(candidate.profile)] = base + len(local)
                local.append(candidate)
            ids[index] = number
        return Table(listed, self.data, ids, self.profiles, local, rows, pending)

    def verdicts(self, key: Any, judge: Judge, now: float) -> tuple[Verdicts, np.ndarray]:
        """The verdicts of predicate set `key` and each cluster's reason id into their
        `reasons` (this call's current clusters judged now, their reasons appended)."""
        shared = self.profiles.judged(key, judge, now)
        if not self.local:
            return shared, shared.reason_ids[self.profile_ids]
        reasons = list(shared.reasons)
        extra_ids, extra_avoided = [], []
        for candidate in self.local:
            reason, avoids, _ = judge(candidate)
            if reason is None:
                extra_ids.append(0)
            else:
                extra_ids.append(len(reasons))
                reasons.append(reason)
            extra_avoided.append(avoids)
        assert self.shared is not None
        # (profiles a refresh added since this view was made are not among its clusters)
        ids = np.concatenate((shared.reason_ids[: self.shared], extra_ids)).astype(np.int64)
        avoided = np.concatenate((shared.avoided[: self.shared], extra_avoided)).astype(np.int64)
        verdicts = Verdicts(reasons, ids, avoided, shared.until)
        return verdicts, ids[self.profile_ids]


class Subset(Sequence["Candidate"]):
    """The clusters of `table` at `positions` (in order), each read when asked for."""

    def __init__(self, table: Table, positions: list[int]) -> None:
        self._table = table
        self._candidate = table.candidate
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, index: Any) -> Any:
        return self._candidate(self._positions[index])

    def __iter__(self) -> Iterator[Candidate]:
        return map(self._candidate, self._positions)

    def many(self, indexes: list[int]) -> list[Candidate]:
        """The clusters at `indexes`, in order (in C, once the pending ones are derived)."""
        positions = list(map(self._positions.__getitem__, indexes))
        table = self._table
        if table.pending is not None and positions:
            at = np.array(positions, dtype=np.int64)
            for position in at[table.pending[0, at] >= 0].tolist():
                table.candidate(position)
        return list(map(table._listed.__getitem__, positions))
