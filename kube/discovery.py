"""API discovery: where a cluster serves each kind. The one implementation, used by policy
reads (`policies/kube.py`), server-side apply and deletes (`kube/apply.py`), and the
cleanup of what Keelson wrote (`kube/ownership.py`).

Discovery asks `/apis` for aggregated discovery (every group, version and resource in one
answer, as kubectl does; Kubernetes 1.27 and later serve it, `/api` then does the same
for the core group). An older server answers the plain group list; then discovery asks
only what is needed: `/api/v1` for core kinds and the resource list of each needed group
version. A version an aggregated answer marks stale (an aggregated API server that is
down) is asked for on its own, as on an older server. A kind the preferred version lacks
is looked up in the group's other versions, best first: CronJob is batch/v1beta1 on 1.20,
batch/v1 later.

Kinds resolved by group (`resolve`) can be kept in the cache (Redis) per cluster and
server version for `DISCOVERY_TTL`, with a copy in this process, so a sweep lists kinds
without asking again. Nothing is written to disk: the kubernetes library's own discoverer
wrote one file per API server under /tmp and read it back in every process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import classify, get_json

logger = logging.getLogger(__name__)
DISCOVERY_TTL = 3600  # seconds; CRDs installed meanwhile are seen after this, or on a 404
# Aggregated discovery (apidiscovery.k8s.io: v2 from 1.30, v2beta1 in 1.27-1.29), else the
# plain discovery documents.
AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
CACHE_PREFIX = "kube:discovery:"
# Higher is preferred when the group's preferred version does not serve the kind.
_STABILITY = {"": 3, "beta": 2, "alpha": 1}


def version_rank(version: str) -> tuple[int, int, int]:
    """v1 > v1beta2 > v1beta1 > v1alpha1, and v2 > v1."""
    number, stage, rest = version.lstrip("v"), "", "0"
    for candidate in ("beta", "alpha"):
        if candidate in number:
            number, rest = number.split(candidate, 1)
            stage = candidate
    try:
        return (_STABILITY[stage], int(number or 0), int(rest or 0))
    except ValueError:  # not a Kubernetes-style version: last
        return (0, 0, 0)


def _preference(versions: list[str], preferred: str = "") -> list[str]:
    """A group's versions, best first: the preferred one (the first if none is named),
    then the others from the most stable and newest down."""
    preferred = preferred or (versions[0] if versions else "")
    others = sorted((v for v in versions if v != preferred), key=version_rank)
    return [preferred, *reversed(others)]


@dataclass(frozen=True)
class ServedKind:
    """Where the cluster serves a kind."""

    group_version: str  # "v1" for the core group, else "apps/v1"
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        root = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        where = f"/namespaces/{namespace}" if namespace and self.namespaced else ""
        return f"{root}{where}/{self.plural}" + (f"/{name}" if name else "")


def _shared(operation: str, *args: Any) -> Any:
    """The shared discovery cache, best effort: with Redis down (restarting, say) discovery
    asks the cluster instead of failing."""
    try:
        return getattr(cache, operation)(*args)
    except Exception as error:
        logger.warning("discovery cache unavailable (%s): asking the cluster", type(error).__name__)
        return None


class _Local:
    """This process's copy of the shared discovery cache: a sweep reads each cluster once
    per interval, and asking Redis for what this worker resolved ten minutes ago cost as
    much as a list. Entries keep the time they were resolved, so a copy never outlives
    the shared entry's DISCOVERY_TTL; a 404 here drops both."""

    def __init__(self, limit: int = 50000) -> None:
        self.limit = limit
        self.clock = time.time
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._entries.get(key)
        if found is None or self.clock() - found[0] > DISCOVERY_TTL:
            return None
        return found[1]

    def put(self, key: str, resolved_at: float, value: dict[str, Any]) -> None:
        with self._lock:
            if len(self._entries) >= self.limit:
                self._entries.clear()
            self._entries[key] = (resolved_at, value)

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


local_copy = _Local()


def prefetch_discovery(cache_keys: list[str]) -> None:
    """Copy the shared discovery of many clusters (a sweep batch's) into this process's
    copy in one round trip, so their readers find it here instead of asking the cache one
    by one."""
    wanted = [f"{CACHE_PREFIX}{key}" for key in cache_keys if key]
    wanted = [key for key in wanted if local_copy.get(key) is None]
    if not wanted:
        return
    for key, entry in (_shared("get_many", wanted) or {}).items():
        if isinstance(entry, dict) and "kinds" in entry:
            local_copy.put(key, float(entry.get("at", 0)), dict(entry["kinds"]))


def _key(group: str, kind: str) -> str:
    return f"{group}/{kind}"


class Discovery:
    """Discovery of one cluster. `cache_key` (the cluster and its server version) shares
    kinds resolved by group across instances and worker processes; without it, what was
    learnt is kept in this instance only. Only kinds that can be listed are considered
    (subresources and create-only kinds such as reviews are not objects one applies)."""

    def __init__(self, api: k8s.ApiClient, *, cache_key: str = "") -> None:
        self.api = api
        self._cache_key = f"{CACHE_PREFIX}{cache_key}" if cache_key else ""
        self._served: dict[str, ServedKind | None] | None = None
        self._groups: dict[str, list[str]] | None = None  # group -> versions, preferred first
        self._lists: dict[str, dict[str, ServedKind]] = {}  # group version -> kind -> served
        self._verbs: dict[tuple[str, str], frozenset[str]] = {}  # (group version, kind)
        self._aggregated: bool | None = None  # whether the server answers aggregated discovery

    def _get(self, path: str, query: dict[str, str] | None = None, accept: str = "") -> Any:
        try:
            if accept:
                return get_json(self.api, path, query, accept=accept)
            return get_json(self.api, path, query)
        except Exception as error:
            raise classify(error) from None

    def _keep(
        self, group_version: str, entries: list[tuple[str, str, bool, list[str]]]
    ) -> dict[str, ServedKind]:
        """Record a group version's resources: (kind, plural, namespaced, verbs) each."""
        served: dict[str, ServedKind] = {}
        for kind, plural, namespaced, verbs in entries:
            if not kind or "/" in plural or "list" not in verbs:
                continue  # subresources, and kinds that cannot be listed
            if kind not in served:
                served[kind] = ServedKind(group_version, plural, namespaced)
                self._verbs[(group_version, kind)] = frozenset(verbs)
        self._lists[group_version] = served
        return served

    def _take_aggregated(self, answer: Any) -> bool:
        """Keep the resources of an APIGroupDiscoveryList (False: the server answered
        something else, an older server's plain document)."""
        if not isinstance(answer, dict) or answer.get("kind") != "APIGroupDiscoveryList":
            return False
        for group in answer.get("items") or []:
            name = str((group.get("metadata") or {}).get("name", ""))
            versions = [v for v in group.get("versions") or [] if v.get("version")]
            if name and self._groups is not None:
                self._groups[name] = _preference([str(v["version"]) for v in versions])
            for version in versions:
                if version.get("freshness") == "Stale":
                    continue  # asked for on its own if a kind needs it
                group_version = f"{name}/{version['version']}" if name else str(version["version"])
                self._keep(
                    group_version,
                    [
                        (
                            str((entry.get("responseKind") or {}).get("kind", "")),
                            str(entry.get("resource", "")),
                            entry.get("scope") == "Namespaced",
                            list(entry.get("verbs") or []),
                        )
                        for entry in version.get("resources") or []
                    ],
                )
        return True

    def _known(self) -> dict[str, ServedKind | None]:
        if self._served is None:
            cached = self._cached()
            self._served = {
                key: ServedKind(*value) if value else None for key, value in (cached or {}).items()
            }
        return self._served

    def _cached(self) -> dict[str, Any] | None:
        """The resolved kinds from this process's copy, else from the shared cache (an
        entry is `{"at": resolved, "kinds": {...}}`)."""
        if not self._cache_key:
            return None
        found = local_copy.get(self._cache_key)
        if found is not None:
            return found
        entry = _shared("get", self._cache_key)
        if not isinstance(entry, dict) or "kinds" not in entry:
            return None  # none, or written by an older release: resolve again
        kinds = dict(entry["kinds"])
        local_copy.put(self._cache_key, float(entry.get("at", 0)), kinds)
        return kinds

    def _all_groups(self) -> dict[str, list[str]]:
        if self._groups is None:
            self._groups = {}
            answer = self._get("/apis", accept=AGGREGATED)
            self._aggregated = self._take_aggregated(answer)
            if not self._aggregated:
                for entry in answer.get("groups") or []:
                    preferred = (entry.get("preferredVersion") or {}).get("version", "")
                    versions = [v.get("version", "") for v in entry.get("versions") or []]
                    self._groups[entry.get("name", "")] = _preference(versions, preferred)
        return self._groups

    def _group_versions(self, group: str) -> list[str]:
        if not group:
            return ["v1"]
        return [v for v in self._all_groups().get(group, []) if v]

    def _resources(self, group_version: str) -> dict[str, ServedKind]:
        if group_version == "v1" and "v1" not in self._lists and self._aggregated is not False:
            # the core group: aggregated from `/api` unless the server is known not to
            self._aggregated = self._take_aggregated(self._get("/api", accept=AGGREGATED))
        if group_version not in self._lists:
            path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            try:
                listed = get_json(self.api, path)
            except ApiException as error:
                if error.status not in (404, 503):  # a group version gone or unavailable
                    raise classify(error) from None
                listed = {}
            except Exception as error:
                raise classify(error) from None
            self._keep(
                group_version,
                [
                    (
                        str(entry.get("kind", "")),
                        str(entry.get("name", "")),
                        bool(entry.get("namespaced")),
                        list(entry.get("verbs") or []),
                    )
                    for entry in listed.get("resources") or []
                ],
            )
        return self._lists[group_version]

    def resolve(self, kinds: list[tuple[str, str]]) -> dict[tuple[str, str], ServedKind | None]:
        """Where each (group, kind) is served in the best version that has it (None: not
        served), asking the cluster only for what the cache does not hold."""
        known = self._known()
        missing = [k for k in dict.fromkeys(kinds) if _key(*k) not in known]
        if any(group for group, _ in missing):
            self._all_groups()  # `/apis` first: it tells whether `/api` is aggregated too
        for group, kind in missing:
            found = None
            for version in self._group_versions(group):
                found = self._resources(f"{group}/{version}" if group else version).get(kind)
                if found is not None:
                    break
            known[_key(group, kind)] = found
        if missing and self._cache_key:
            resolved = {
                key: (s.group_version, s.plural, s.namespaced) if s else None
                for key, s in known.items()
            }
            now = time.time()
            local_copy.put(self._cache_key, now, resolved)
            _shared("set", self._cache_key, {"at": now, "kinds": resolved}, DISCOVERY_TTL)
        return {k: known[_key(*k)] for k in kinds}

    def resource(self, group: str, kind: str) -> ServedKind | None:
        """The served resource for (group, kind), or None."""
        return self.resolve([(group, kind)])[(group, kind)]

    def served(self, api_version: str, kind: str) -> ServedKind | None:
        """Where the cluster serves `kind` in exactly `api_version` (a manifest's), or None.
        A miss reads the group version again once: its CRD may have been applied a moment
        ago (the kubernetes library's discoverer did the same)."""
        found = self._resources(api_version).get(kind)
        if found is None:
            self._lists.pop(api_version, None)
            found = self._resources(api_version).get(kind)
        return found

    def preferred(self, *, verbs: frozenset[str] = frozenset()) -> list[tuple[str, ServedKind]]:
        """(kind, served) of every listable kind in each group's preferred version (the
        core group's v1 included) that allows all of `verbs`."""
        versions = ["v1"] + [
            f"{group}/{found[0]}" for group, found in self._all_groups().items() if found
        ]
        return [
            (kind, served)
            for group_version in versions
            for kind, served in self._resources(group_version).items()
            if verbs <= self._verbs.get((group_version, kind), frozenset())
        ]

    def groups(self) -> list[str]:
        """The API groups the cluster serves (one `/apis` request per instance)."""
        return [group for group in self._all_groups() if group]

    def group_kinds(self, group: str) -> dict[str, ServedKind]:
        """Every listable kind of `group` in its preferred version ({} if not served):
        Gatekeeper makes one constraint kind per ConstraintTemplate, known only so."""
        versions = self._group_versions(group)
        return dict(self._resources(f"{group}/{versions[0]}")) if versions else {}

    def forget(self) -> None:
        """A path discovery gave answered 404: ask again next time."""
        self._served, self._groups, self._lists, self._aggregated = {}, None, {}, None
        self._verbs = {}
        if self._cache_key:
            local_copy.drop(self._cache_key)
            _shared("delete", self._cache_key)


def discovery_for(api: k8s.ApiClient) -> Discovery:
    """The ApiClient's Discovery, kept on the (per-cluster, cached) client: group versions
    are read once per process and client, then again only for a kind not found."""
    found: Discovery | None = getattr(api, "_keelson_discovery", None)
    if found is None:
        found = Discovery(api)
        api._keelson_discovery = found
    return found
