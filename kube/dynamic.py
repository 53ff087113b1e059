"""The kubernetes client's DynamicClient with discovery kept in memory.

By default the library writes each API server's discovery to `/tmp/osrcp-<host>.json`
and reads it back in every process: one file per member cluster that is never cleaned
up (24,000 after a 10,000-cluster sweep), shared between clusters behind the same host.
Here discovery lives on the cluster's cached ApiClient instead; a kind it does not know
makes the library refresh it, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.discovery import LazyDiscoverer

# A path that can never exist (a file under /dev/null): the library finds no cache to
# read, and its write fails silently.
_NO_FILE = str(Path(os.devnull) / "keelson-discovery.json")


class MemoryDiscoverer(LazyDiscoverer):
    def __init__(self, client: Any, cache_file: str | None) -> None:
        super().__init__(client, _NO_FILE)

    def _write_cache(self) -> None:
        """Never written to disk."""


def dynamic_client(api: k8s.ApiClient) -> DynamicClient:
    """The ApiClient's DynamicClient, built (and discovery done) once per client."""
    found: DynamicClient | None = getattr(api, "_keelson_dynamic", None)
    if found is None:
        found = DynamicClient(api, discoverer=MemoryDiscoverer)
        api._keelson_dynamic = found
    return found
