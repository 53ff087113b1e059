"""The predicates of a placement (health, label and field selectors, taints and
tolerations, capacity), for `applications.scheduler`, over a `Table` of candidates.

Fleets repeat label sets, places and taints: each distinct profile (everything but
capacity) is judged once per predicate set and kept with the team's table
(`Profiles.judged`), then every cluster reads its profile's verdict in one array gather.
Capacity is compared in floats, which order exactly like the Decimals they round
(rounding is monotonic): only an equal float pair, and a cluster the application already
holds replicas on, are compared again in Decimal.

Tolerations follow Kubernetes/OCM matching; `tolerationSeconds` follows Karmada's
NoExecute semantics (`expiry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from applications.capacity import room
from applications.decision import CAPACITY_FITS, Excluded
from applications.table import FREE_CPU, FREE_MEMORY, HELD, Table, Verdict
from clusters.labels import LabelSelector

if TYPE_CHECKING:
    from applications.scheduler import Candidate, PerReplica, PlacementSpec

HEALTHY = ("ready", "degraded")
INFINITY = float("inf")


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes/OCM toleration matching. `Exists` matches any value of its key (an empty
    key: every taint); `Equal` needs key and value to match (a missing value is ""); an
    empty effect matches every effect. Without `operator`, a toleration with a value is
    `Equal` and one without is `Exists` (what Keelson did before operators existed)."""
    key = toleration.get("key", "")
    operator = toleration.get("operator") or ("Equal" if "value" in toleration else "Exists")
    if operator == "Exists":
        if key and key != taint["key"]:
            return False
    elif key != taint["key"] or toleration.get("value", "") != taint.get("value", ""):
        return False
    return not toleration.get("effect") or toleration["effect"] == taint["effect"]


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def added_at(taint: dict[str, Any]) -> float | None:
    """When a NoExecute taint was added (epoch seconds; None: not recorded)."""
    stamp = taint.get("timeAdded")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def expiry(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> float | None:
    """Until when (epoch seconds) `tolerations` tolerate a NoExecute `taint`, as Karmada's
    taint manager counts (GetMinTolerationTime): the earliest timeAdded + tolerationSeconds
    over the tolerations that match it and carry seconds; INFINITY when those that match
    carry none (tolerated for ever) or the taint has no timeAdded; None: not tolerated."""
    matching = [t for t in tolerations if tolerates(t, taint)]
    if not matching:
        return None
    added = added_at(taint)
    seconds = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
    if added is None or not seconds:
        return INFINITY
    return added + max(min(seconds), 0)


def _text(taint: dict[str, Any]) -> str:
    return f"{taint['key']}={taint.get('value', '')}:{taint['effect']}"


def _gib(value: Decimal) -> str:
    return f"{value / Decimal(2**30):.2f}"


@dataclass(frozen=True)
class Split:
    """The feasible clusters' positions in the table (name order), the taints each avoids,
    and the excluded clusters."""

    feasible: list[int]
    at: np.ndarray  # `feasible` as an array
    avoided: np.ndarray
    excluded: Excluded


class Predicates:
    """The predicates of one call at `now` (epoch seconds)."""

    def __init__(self, spec: PlacementSpec, need: PerReplica, now: float) -> None:
        self.spec = spec
        self.need = need
        self.now = now
        self.selector = LabelSelector.parse(spec.selector)
        minimum = spec.replicas if spec.division == "duplicated" else 1
        self.cpu = need.cpu * minimum
        self.memory = need.memory * minimum
        # What a profile's verdict depends on besides the profile (and the time).
        self.key = (
            spec.selector,
            repr(sorted(spec.fields.items())),
            repr(spec.tolerations),
        )

    def split(self, table: Table) -> Split:
        """The feasible and excluded clusters of `table`, with the reasons of the latter."""
        verdicts, reason_ids = table.verdicts(self.key, self.judge, self.now)
        reasons = [*verdicts.reasons, CAPACITY_FITS]
        capacity_id = len(reasons) - 1
        passed = reason_ids == 0
        free_cpu, free_memory = table.row(FREE_CPU), table.row(FREE_MEMORY)
        cpu, memory = float(self.cpu), float(self.memory)
        short = passed & ((free_cpu < cpu) | (free_memory < memory))
        # Equal floats may round unequal Decimals: compared exactly.
        for position in np.flatnonzero(
            passed & ~short & ((free_cpu == cpu) | (free_memory == memory))
        ).tolist():
            candidate = table.candidate(position)
            if candidate.free_cpu < self.cpu or candidate.free_memory < self.memory:
                short[position] = True
        # The application's own replicas are room for it.
        for position in np.flatnonzero(short & (table.row(HELD) > 0)).tolist():
            if self._fits_with_own(table.candidate(position)):
                short[position] = False
        if short.any():
            reason_ids = np.where(short, capacity_id, reason_ids)
        feasible = np.flatnonzero(reason_ids == 0)
        excluded = np.flatnonzero(reason_ids != 0)
        avoided = verdicts.avoided[table.profile_ids[feasible]]
        return Split(
            feasible.tolist(),
            feasible,
            avoided,
            Excluded(table, excluded, reason_ids[excluded], reasons),
        )

    def _fits_with_own(self, candidate: Candidate) -> bool:
        cpu, memory = room(candidate, self.need)
        return cpu >= self.cpu and memory >= self.memory

    def capacity(self, candidate: Candidate) -> str:
        """Why `candidate` does not fit (the reason of a CapacityFits exclusion)."""
        cpu, memory = room(candidate, self.need)
        return (
            f"needs {self.cpu} CPU and {_gib(self.memory)} GiB free, has "
            f"{cpu} CPU and {_gib(memory)} GiB"
        )

    def judge(self, candidate: Candidate) -> Verdict:
        """Why the profile of `candidate` is excluded (None: it is not), how many of its
        taints it avoids, and until when that holds. An unhealthy cluster keeping its place
        (`tolerated`) is healthy enough (its profile says so)."""
        tolerations = self.spec.tolerations
        avoided = sum(
            1
            for t in candidate.taints
            if t["effect"] == "PreferNoSelect" and not _tolerated(t, tolerations)
        )
        reason, until = self._profile(candidate)
        return reason, avoided, until

    def _profile(self, candidate: Candidate) -> tuple[tuple[str, str] | None, float]:
        spec = self.spec
        if not candidate.tolerated and candidate.status not in HEALTHY:
            return ("Healthy", f"status is {candidate.status}"), INFINITY
        if not self.selector.matches(candidate.labels):
            return ("LabelSelector", f"labels do not match {spec.selector!r}"), INFINITY
        for name, allowed in spec.fields.items():
            value = getattr(candidate, name)
            if allowed and value not in allowed:
                listed = ", ".join(allowed)
                return (
                    ("FieldSelector", f"{name} {value or '(none)'} is not one of {listed}"),
                    INFINITY,
                )
        until = INFINITY
        for taint in candidate.taints:
            effect = taint["effect"]
            if effect == "NoExecute":
                # Karmada: excluded, and evicted where it runs, unless tolerated; a
                # toleration with tolerationSeconds keeps it until it expires.
                ends = expiry(taint, spec.tolerations)
                if ends is None:
                    return ("TaintToleration", f"taint {_text(taint)} is not tolerated"), INFINITY
                if ends <= self.now:
                    seconds = int(ends - (added_at(taint) or ends))
                    return (
                        "TaintToleration",
                        f"taint {_text(taint)} was tolerated for {seconds}s "
                        f"(tolerationSeconds); that has expired",
                    ), INFINITY
                until = min(until, ends)
            elif (
                effect == "NoSelect" or (effect == "NoSelectIfNew" and not candidate.current)
            ) and not _tolerated(taint, spec.tolerations):
                # (an earlier NoExecute taint's expiry changes which taint is named)
                return ("TaintToleration", f"taint {_text(taint)} is not tolerated"), until
        return None, until
