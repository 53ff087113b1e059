"""Kubernetes end of life: when each minor version stops being supported upstream and on
EKS, GKE and AKS. Shipped as `clusters/eol.json` (sources cited in it); an operator
installs a newer table with `manage.py keelson_update_eol <file.json>`, which is stored
in the database so every process reads the same one.

`eol_for(provider, version)` answers for a cluster's provider (aws → EKS, gcp → GKE,
azure → AKS, anything else → upstream); a provider without a date for that minor version
falls back to the upstream date."""

from __future__ import annotations

import json
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

from clusters.models import EolTable

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
