"""Where the Kubernetes binaries are: KEELSON_KUBE_ASSETS, or the cache that
`make kube-binaries` (scripts/kube-binaries.sh) fills."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KUBE_VERSION = "1.20.2"
BUILD_REVISION = "r2"  # keep in step with scripts/kube-binaries.sh
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "kube-binaries.sh"


class KubeBinariesMissing(Exception):
    """The Kubernetes binaries are not installed."""


@dataclass(frozen=True)
class KubeBinaries:
    apiserver: Path
    controller_manager: Path
    scheduler: Path
    etcd: Path


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "keelson" / f"kube-{KUBE_VERSION}-{BUILD_REVISION}"


def find_binaries(*, build: bool = False) -> KubeBinaries:
    """Locate the binaries; with `build=True`, build them first if they are missing
    (about 10 minutes, once)."""
    assets = os.environ.get("KEELSON_KUBE_ASSETS")
    directory = Path(assets) if assets else cache_dir()
    etcd = shutil.which("etcd") or (
        str(directory / "etcd") if (directory / "etcd").exists() else None
    )
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    missing = [name for name in names if not (directory / name).exists()]
    if (missing or etcd is None) and build:
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
        return find_binaries(build=False)
    if missing or etcd is None:
        what = ", ".join([*missing, *([] if etcd else ["etcd"])])
        raise KubeBinariesMissing(
            f"missing {what} (looked in {directory} and PATH): run `make kube-binaries`, "
            "or point KEELSON_KUBE_ASSETS at a directory holding them"
        )
    return KubeBinaries(
        apiserver=directory / "kube-apiserver",
        controller_manager=directory / "kube-controller-manager",
        scheduler=directory / "kube-scheduler",
        etcd=Path(etcd),
    )
