"""Reading a cluster's engine results: Policy WG reports and Gatekeeper constraints.

Whether a cluster serves either group at all is one `/apis` request, remembered in the
cache per cluster and server version for DISCOVERY_TTL: a cluster without the CRDs costs
that request once an hour and nothing at the other collections. A cluster with them gets
its reports listed, and Gatekeeper's constraint kinds (one per ConstraintTemplate, so
templates added meanwhile are seen) read from the group's preferred version, each
collection. Network only: runs in worker threads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from kube.discovery import DISCOVERY_TTL
from policies.external.parsing import (
    CONSTRAINT_GROUP,
    REPORT_GROUP,
    Finding,
    constraint_finding,
    report_findings,
)
from policies.kube import ClusterReader

logger = logging.getLogger(__name__)
GROUPS_CACHE = "policies:external:groups:"
REPORT_KINDS = ("PolicyReport", "ClusterPolicyReport")


@dataclass
class EngineRead:
    """What a cluster's engines report: the raw objects, and the findings made of them."""

    groups: list[str]
    reports: list[dict[str, Any]] = field(default_factory=list)
    constraints: list[dict[str, Any]] = field(default_factory=list)

    def findings(self) -> dict[tuple[str, str], Finding]:
        found = report_findings(self.reports)
        for constraint in self.constraints:
            finding = constraint_finding(constraint)
            found[finding.key] = finding
        return found


def engine_groups(reader: ClusterReader, cache_key: str) -> list[str]:
    """Which of the engines' groups the cluster serves, from the cache when known."""
    key = f"{GROUPS_CACHE}{cache_key}"
    try:
        known = cache.get(key)
    except Exception:  # Redis restarting: ask the cluster
        known = None
    if isinstance(known, list):
        return known
    served = set(reader.groups())
    groups = [group for group in (REPORT_GROUP, CONSTRAINT_GROUP) if group in served]
    try:
        cache.set(key, groups, DISCOVERY_TTL)
    except Exception:
        logger.warning("could not cache the engine groups of %s", cache_key)
    return groups


def forget_engine_groups(cache_key: str) -> None:
    """Ask the cluster again at the next read (a test installing CRDs, or a user who just
    installed an engine and does not want to wait for the hour)."""
    try:
        cache.delete(f"{GROUPS_CACHE}{cache_key}")
    except Exception:
        logger.warning("could not drop the engine groups of %s", cache_key)


def read_engines(reader: ClusterReader, cache_key: str) -> EngineRead:
    """List the cluster's reports and constraints (ClusterConnectError if it cannot be
    read)."""
    read = EngineRead(groups=engine_groups(reader, cache_key))
    if REPORT_GROUP in read.groups:
        for kind in REPORT_KINDS:
            read.reports += reader.list(REPORT_GROUP, kind)
    if CONSTRAINT_GROUP in read.groups:
        for kind in sorted(reader.group_kinds(CONSTRAINT_GROUP)):
            read.constraints += reader.list(CONSTRAINT_GROUP, kind)
    return read
