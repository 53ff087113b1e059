"""Which version of the Pod Security Standards judges a cluster, and the rules of a bundled
PSS policy at that version.

Precedence (documented in docs/user-guide.md): a policy pinned to a version
(`Policy.pss_version`, as Pod Security Admission's `enforce-version` label) checks that
version everywhere; an unpinned one ("latest") checks a cluster at the version its cluster
set pins (`ClusterSetPin`), the oldest one when several of its sets pin different versions
(a pin holds verdicts back until someone decides; no set's pin is overtaken by another's);
otherwise the newest version the library knows.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from clusters.models import Cluster
from clusters.services.lifecycle import cluster_set_clusters
from policies.library import LATEST, is_versioned, library_entry, minor_of
from policies.models import ClusterSetPin, Policy, PolicyRule


def pss_pins(clusters: list[Cluster]) -> dict[int, str]:
    """The version each cluster's sets pin, by cluster id (pinned clusters only): one query
    for the teams' pins, one per pinned set."""
    ids = [c.pk for c in clusters]
    found: dict[int, str] = {}
    pins = ClusterSetPin.objects.filter(
        cluster_set__team_id__in={c.team_id for c in clusters}
    ).select_related("cluster_set")
    for pin in pins:
        members = cluster_set_clusters(cluster_set=pin.cluster_set).filter(pk__in=ids)
        for pk in members.values_list("pk", flat=True):
            if pk not in found or minor_of(pin.pss_version) < minor_of(found[pk]):
                found[pk] = pin.pss_version
    return found


def follows_set_pin(policy: Policy) -> bool:
    """Whether a cluster set's pin decides the version this policy checks."""
    if not policy.bundled or policy.pss_version != LATEST:
        return False
    entry = library_entry(policy.name)
    return entry is not None and is_versioned(entry)


@cache
def _library_rules(name: str, version: str) -> tuple[PolicyRule, ...]:
    """Unsaved rules of the bundled policy `name` read at `version` (read-only, shared)."""
    entry = library_entry(name, version)
    assert entry is not None
    return tuple(
        PolicyRule(
            position=position,
            **{key: raw.get(key, default) for key, default in _DEFAULTS.items()},
        )
        for position, raw in enumerate(entry["rules"], start=1)
    )


_DEFAULTS: dict[str, Any] = {
    "name": "",
    "kind": "object",
    "match": {},
    "autogen": True,
    "expression": "",
    "message": "",
    "compliance_type": "",
    "object_template": {},
}


def rules_at(policy: Policy, pinned: str | None, stored: list[Any]) -> list[Any]:
    """The rules `policy` judges a cluster with, given the version the cluster's sets pin
    (`pinned`, None when none does) and the policy's own `stored` rules."""
    if pinned is None or pinned == LATEST or not follows_set_pin(policy):
        return stored
    return list(_library_rules(policy.name, pinned))
