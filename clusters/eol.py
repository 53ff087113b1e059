"""Kubernetes end of life: when each minor version stops being supported upstream and on
EKS, GKE and AKS. Shipped as `clusters/eol.json` (sources cited in it); an operator
installs a newer table with `manage.py keelson_update_eol <file.json>`, which is stored
in the database so every process reads the same one.

`eol_for(provider, version)` answers for a cluster's provider (aws → EKS, gcp → GKE,
azure → AKS, anything else → upstream); a provider without a date for that minor version
falls back to the upstream date.

`eol_state` says whether a version is past its end of life, within `SOON_DAYS` of it,
supported or unknown (the cluster list's column); `clusters_by_eol` is the same judgement
in SQL (the list's `?eol=` filter), and `clusters_past_eol` what update runs scoped to
`{"eol": "past"}` change. The end-of-life day itself counts as past, as on the cluster
page."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from clusters.choices import EolState
from clusters.models import Cluster, EolTable

SHIPPED = Path(__file__).with_name("eol.json")
TABLES = ("upstream", "eks", "gke", "aks")
PROVIDER_TABLE = {
    "aws": "eks",
    "eks": "eks",
    "gcp": "gke",
    "gke": "gke",
    "azure": "aks",
    "aks": "aks",
}
_MINOR = re.compile(r"^v?(\d+)\.(\d+)")
_CACHE_SECONDS = 60.0
SOON_DAYS = 90
_cache: tuple[float, dict[str, dict[str, date]]] | None = None


class EolTableError(ValueError):
    """The table's shape or a date is wrong; the message says where."""


def minor_of(version: str) -> str | None:
    """`v1.20.2-eks-1` → `1.20`."""
    found = _MINOR.match(version.strip()) if version else None
    return f"{int(found[1])}.{int(found[2])}" if found else None


def parse_table(data: Any) -> dict[str, dict[str, date]]:
    """Check a table (`{"providers": {"upstream": {"1.20": "2022-02-28"}, ...}}`)."""
    if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
        raise EolTableError('The file must be an object with "providers".')
    providers = data["providers"]
    unknown = set(providers) - set(TABLES)
    if unknown:
        raise EolTableError(f"Unknown providers: {', '.join(sorted(unknown))} (use {TABLES}).")
    if not isinstance(providers.get("upstream"), dict) or not providers["upstream"]:
        raise EolTableError('"upstream" must list at least one minor version.')
    table: dict[str, dict[str, date]] = {}
    for name, entries in providers.items():
        if not isinstance(entries, dict):
            raise EolTableError(f"{name}: an object of minor version → date.")
        table[name] = {}
        for minor, value in entries.items():
            if minor_of(str(minor)) != minor:
                raise EolTableError(f"{name}: {minor!r} is not a minor version like 1.30.")
            try:
                table[name][minor] = date.fromisoformat(str(value))
            except ValueError:
                problem = f"{name} {minor}: {value!r} is not a date (YYYY-MM-DD)."
                raise EolTableError(problem) from None
    return table


def _load() -> dict[str, dict[str, date]]:
    row = EolTable.objects.order_by("-updated_at").first()
    if row is not None:
        return parse_table(row.data)
    return parse_table(json.loads(SHIPPED.read_text()))


def eol_table(*, fresh: bool = False) -> dict[str, dict[str, date]]:
    """The table in force, re-read at most once a minute per process."""
    global _cache
    now = time.monotonic()
    if fresh or _cache is None or now - _cache[0] > _CACHE_SECONDS:
        _cache = (now, _load())
    return _cache[1]


def eol_for(provider: str, version: str) -> date | None:
    """The end-of-life date of `version` on `provider`, or None when the table does not
    know that minor version."""
    minor = minor_of(version)
    if minor is None:
        return None
    table = eol_table()
    own = table.get(PROVIDER_TABLE.get(provider, "upstream"), {})
    return own.get(minor) or table.get("upstream", {}).get(minor)


def eol_replace(data: Any) -> int:
    """Validate and install a new table; returns how many dates it holds."""
    table = parse_table(data)
    EolTable.objects.all().delete()
    EolTable.objects.create(
        data={"sources": data.get("sources", {}), "providers": data["providers"]}
    )
    eol_table(fresh=True)
    return sum(len(entries) for entries in table.values())


def eol_today() -> date:
    """The day end-of-life states are judged on (the site's time zone)."""
    return timezone.localdate()


def eol_state(end: date | None, *, today: date | None = None) -> EolState:
    """The state of a version whose end of life is `end` (None: the table does not know)."""
    if end is None:
        return EolState.UNKNOWN
    today = today or eol_today()
    if end <= today:
        return EolState.PAST
    if end <= today + timedelta(days=SOON_DAYS):
        return EolState.SOON
    return EolState.SUPPORTED


def eol_of(provider: str, version: str) -> tuple[EolState, date | None]:
    """A cluster's end-of-life state and date, for pages and the API."""
    end = eol_for(provider, version)
    return eol_state(end), end


def _minors_regex(minors: list[str]) -> str:
    """A PostgreSQL regular expression matching the versions `minor_of` reads as one of
    `minors` (`v1.20.2`, `1.20.1-eks-1`, not `1.201`)."""
    by_major: dict[int, list[int]] = defaultdict(list)
    for minor in minors:
        major, number = minor.split(".")
        by_major[int(major)].append(int(number))
    alternatives = "|".join(
        rf"0*{major}\.0*({'|'.join(str(n) for n in sorted(numbers))})"
        for major, numbers in sorted(by_major.items())
    )
    return rf"^\s*v?({alternatives})([^0-9]|$)"


def _eol_q(state: EolState, today: date) -> Q:
    """Clusters in `state`, as the table in force judges (provider, version) pairs."""
    if state == EolState.UNKNOWN:
        known = [EolState.PAST, EolState.SOON, EolState.SUPPORTED]
        return ~_any_q([_eol_q(known_state, today) for known_state in known])
    table = eol_table()
    upstream = table.get("upstream", {})
    found = []
    for name in TABLES:
        dates = {**upstream, **table.get(name, {})}
        minors = [m for m, end in dates.items() if eol_state(end, today=today) == state]
        if not minors:
            continue
        providers = [p for p, t in PROVIDER_TABLE.items() if t == name]
        where = (
            ~Q(provider__in=list(PROVIDER_TABLE))
            if name == "upstream"
            else Q(provider__in=providers)
        )
        found.append(where & Q(kubernetes_version__regex=_minors_regex(minors)))
    return _any_q(found)


def _any_q(parts: list[Q]) -> Q:
    if not parts:
        return Q(pk__in=[])
    combined = parts[0]
    for part in parts[1:]:
        combined |= part
    return combined


def clusters_by_eol(
    clusters: QuerySet[Cluster], state: str, *, today: date | None = None
) -> QuerySet[Cluster]:
    """`clusters` whose version is in `state` (an EolState value) today."""
    return clusters.filter(_eol_q(EolState(state), today or eol_today()))


def clusters_past_eol(clusters: QuerySet[Cluster]) -> QuerySet[Cluster]:
    """`clusters` running a Kubernetes version past its end of life (update runs' scope
    `{"eol": "past"}`)."""
    return clusters_by_eol(clusters, EolState.PAST)
