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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from applications.scheduler import Candidate

# The rows of `Table.data`: `Candidate.floats` by position, then the replicas held.
LEAST_ALLOCATED, CURRENT, ALLOCATABLE_CPU, ALLOCATABLE_MEMORY = 0, 1, 2, 3
REQUESTED_CPU, REQUESTED_MEMORY, CPU_PRICE, RAM_PRICE, FREE_CPU, FREE_MEMORY = 4, 5, 6, 7, 8, 9
HELD = 10
ROWS = 11
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
    return np.array([(*c.floats, c.held) for c in candidates], dtype=np.float64).T.copy()


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
    ) -> None:
        self.candidates = candidates
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
        return len(self.candidates)

    def row(self, field: int) -> np.ndarray:
        found = self.rows.get(field)
        return self.data[field] if found is None else found

    def replaced(self, positions: list[int], candidates: list[Candidate]) -> Table:
        """This table with the clusters at `positions` replaced (same names), copy-on-write:
        a call that holds this table keeps reading it unchanged."""
        listed = list(self.candidates)
        for position, candidate in zip(positions, candidates, strict=True):
            listed[position] = candidate
        data = self.data.copy()
        ids = self.profile_ids.copy()
        if positions:
            at = np.array(positions, dtype=np.int64)
            data[:, at] = _column(candidates)
            ids[at] = np.fromiter(map(self.profiles.id, candidates), np.int64, len(candidates))
        return Table(listed, data, ids, self.profiles)

    def with_current(self, positions: list[int], candidates: list[Candidate]) -> Table:
        """A view for one call with the clusters at `positions` replaced by `candidates`,
        the same clusters marked current (their flags, replicas held and tolerated status
        are this application's): only what that changes is copied (the rows CURRENT and
        HELD, the profile ids)."""
        if not positions:
            return self
        listed = list(self.candidates)
        for position, candidate in zip(positions, candidates, strict=True):
            listed[position] = candidate
        at = np.array(positions, dtype=np.int64)
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
        return Table(listed, self.data, ids, self.profiles, local, rows)

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
