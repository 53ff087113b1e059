"""A placement decision: the chosen clusters with their scores and replicas, warnings, and
why every other cluster was excluded or not selected, for `applications.scheduler`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from applications.scheduler import Candidate

# An exclusion for capacity: its message names the cluster's free capacity, written only
# when read (`Predicates.capacity`).
CAPACITY_FITS = ("CapacityFits", "")


@dataclass(frozen=True)
class Excluded:
    """The excluded clusters: their positions in `table` (name order) and, position
    for position, their reason ids into `reasons` ((predicate, reason) pairs). Arrays, not
    an object per cluster: at 10,000 clusters those cost more than the decision."""

    table: Any  # a `Table` (or anything with `candidate(position)`)
    positions: np.ndarray
    reason_ids: np.ndarray
    reasons: list[tuple[str, str] | None]

    def counts(self) -> dict[str, int]:
        """How many clusters each predicate excluded."""
        counts: Counter[str] = Counter()
        found = np.bincount(self.reason_ids, minlength=len(self.reasons))
        for reason_id in np.flatnonzero(found).tolist():
            reason = self.reasons[reason_id]
            assert reason is not None
            counts[reason[0]] += int(found[reason_id])
        return dict(counts)

    def first(self, first: int) -> list[int]:
        """Indexes (into `positions`) of the first `first` clusters per predicate, in order."""
        predicates: dict[str, int] = {}
        of_reason = np.array(
            [predicates.setdefault(r[0], len(predicates)) if r else -1 for r in self.reasons],
            dtype=np.int64,
        )
        by_predicate = of_reason[self.reason_ids] if len(self.reason_ids) else self.reason_ids
        kept = [np.flatnonzero(by_predicate == p)[:first] for p in range(len(predicates))]
        if not kept:
            return []
        return sorted(np.concatenate(kept).tolist())


NOTHING_EXCLUDED = Excluded(None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [None])


class Decision:
    """Chosen clusters with their scores and replicas, warnings, and why every other
    cluster was excluded (`excluded`, by name) or not selected (`not_selected`, by rank).

    Those explanations are written when read, not when deciding: at 10,000 clusters
    writing them costs more than the decision, and a summary reads only a few of them."""

    def __init__(
        self,
        *,
        excluded: Excluded = NOTHING_EXCLUDED,
        capacity: Callable[[Candidate], str] | None = None,
    ) -> None:
        self._chosen: list[dict[str, Any]] | None = []
        self._write_chosen: Callable[[], list[dict[str, Any]]] | None = None
        self.warnings: list[str] = []
        # Divided replicas that fit in no chosen cluster (a warning says so too).
        self.unschedulable = 0
        self._excluded = excluded
        self._capacity = capacity
        self._excluded_entries: list[dict[str, str]] | None = None
        # Not selected: the first (spread) by rank with their reasons, then `_rest` (of
        # `_rest_count` clusters) in rank order, every one for the same `_rest_reason`.
        # (Three lists, not a tuple per cluster: thousands of objects a call to collect.)
        self._passed_names: list[str] = []
        self._passed_reasons: list[str] = []
        self._passed_ranks: list[int] = []
        # Chosen clusters left without replicas: (ranks, their names when called, reason).
        self._dropped: tuple[list[int], Callable[[], list[str]], str] | None = None
        self._rest: Iterator[Candidate] = iter(())
        self._rest_read: list[str] = []
        self._rest_count = 0
        self._rest_reason = ""
        self._not_selected_entries: list[dict[str, Any]] | None = None

    @property
    def chosen(self) -> list[dict[str, Any]]:
        """The chosen clusters, best first, with their scores and replicas."""
        if self._chosen is None:
            assert self._write_chosen is not None
            self._chosen = self._write_chosen()
        return self._chosen

    @chosen.setter
    def chosen(self, entries: list[dict[str, Any]]) -> None:
        self._chosen = entries

    def chosen_by(self, write: Callable[[], list[dict[str, Any]]]) -> None:
        """The chosen clusters are `write()`, called when first read."""
        self._chosen, self._write_chosen = None, write

    def passed(self, candidate: Candidate, rank: int, reason: str) -> None:
        """`candidate`, in rank order, is not selected for `reason`."""
        self._passed_names.append(candidate.name)
        self._passed_reasons.append(reason)
        self._passed_ranks.append(rank)

    def without_replicas(
        self, ranks: list[int], names: Callable[[], list[str]], reason: str
    ) -> None:
        """The chosen clusters `names()` (of `ranks`) get no replicas of a divided
        placement, so they leave it: not selected for `reason`, in rank order among the
        others (all rank before the clusters not read, `_rest`). Named when first read:
        a division of 100 replicas over 10,000 clusters leaves 9,900 of them."""
        if ranks:
            self._dropped = (ranks, names, reason)

    def _settle(self) -> None:
        """The clusters left without replicas among the others not selected, by rank."""
        if self._dropped is None:
            return
        dropped, names_of, reason = self._dropped
        self._dropped = None
        ranks = self._passed_ranks + dropped
        names = self._passed_names + names_of()
        reasons = self._passed_reasons + [reason] * len(dropped)
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        self._passed_ranks = [ranks[i] for i in order]
        self._passed_names = [names[i] for i in order]
        self._passed_reasons = [reasons[i] for i in order]

    @property
    def _passed(self) -> list[tuple[str, str]]:
        """(cluster, reason) of the clusters not selected before `_rest`, in rank order."""
        self._settle()
        return list(zip(self._passed_names, self._passed_reasons, strict=True))

    def rest_not_selected(self, rest: Iterator[Candidate], count: int, reason: str) -> None:
        """The `count` clusters of `rest` (rank order, read only when asked for) are not
        selected, every one for `reason`."""
        self._rest, self._rest_count, self._rest_reason = rest, count, reason

    @property
    def excluded(self) -> list[dict[str, str]]:
        if self._excluded_entries is None:
            self._excluded_entries = list(
                map(self._exclusion, range(len(self._excluded.positions)))
            )
        return self._excluded_entries

    @property
    def not_selected(self) -> list[dict[str, Any]]:
        if self._not_selected_entries is None:
            self._not_selected_entries = [
                {"cluster": name, "reason": reason}
                for name, reason in self._passed + self._rest_named(self._rest_count)
            ]
        return self._not_selected_entries

    def as_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "excluded": self.excluded,
            "not_selected": self.not_selected,
            "warnings": self.warnings,
            "unschedulable": self.unschedulable,
        }

    def summarized(self, first: int | None) -> dict[str, Any]:
        """`as_json` with at most the `first` clusters (by name, resp. rank) per predicate
        of `excluded` and per reason of `not_selected` (None: every one), and `summary`
        counting every one: 10,000 clusters explained one by one are 800 KiB."""
        by_predicate = self._excluded.counts()
        if first is None:
            excluded, not_selected = self.excluded, self.not_selected
        else:
            excluded = list(map(self._exclusion, self._excluded.first(first)))
            passed = _first_per(self._passed, first)
            rest = self._rest_named(min(first, self._rest_count))
            not_selected = [{"cluster": name, "reason": reason} for name, reason in passed + rest]
        self._settle()
        by_reason = Counter(self._passed_reasons)
        if self._rest_count:
            by_reason[self._rest_reason] += self._rest_count
        return {
            "chosen": self.chosen,
            "excluded": excluded,
            "not_selected": not_selected,
            "warnings": self.warnings,
            "unschedulable": self.unschedulable,
            "summary": {
                "excluded": dict(by_predicate),
                "not_selected": dict(by_reason),
                "complete": len(excluded) == len(self._excluded.positions)
                and len(not_selected) == len(self._passed_names) + self._rest_count,
            },
        }

    def _exclusion(self, index: int) -> dict[str, str]:
        """The entry of the `index`-th excluded cluster."""
        excluded = self._excluded
        candidate = excluded.table.candidate(int(excluded.positions[index]))
        reason = excluded.reasons[int(excluded.reason_ids[index])]
        assert reason is not None
        text = reason[1]
        if reason is CAPACITY_FITS:
            assert self._capacity is not None
            text = self._capacity(candidate)
        return {"cluster": candidate.name, "predicate": reason[0], "reason": text}

    def _rest_named(self, count: int) -> list[tuple[str, str]]:
        """The first `count` of `_rest` as (cluster, reason), read from `_rest` once."""
        missing = count - len(self._rest_read)
        if missing > 0:
            self._rest_read += [c.name for c in islice(self._rest, missing)]
        reason = self._rest_reason
        return [(name, reason) for name in self._rest_read[:count]]


def _first_per(entries: list[tuple[str, str]], first: int) -> list[tuple[str, str]]:
    """At most the `first` (cluster, reason) entries per reason, in order."""
    kept, seen = [], Counter[str]()
    for entry in entries:
        if seen[entry[1]] < first:
            seen[entry[1]] += 1
            kept.append(entry)
    return kept
