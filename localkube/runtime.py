"""Progress of the local Kubernetes runtime build that `make run` starts in the background.

On a machine without the Kubernetes binaries, `make run` starts at once and builds them
(scripts/kube-binaries.sh, about 10 minutes once) while Keelson already serves; the script
writes its progress to a small JSON file under KEELSON_VAR_DIR, which the overview and the
`local` provider read. No file means no build was started (or it finished long ago).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROGRESS_FILE = "kube-runtime.json"


@dataclass(frozen=True)
class RuntimeProgress:
    state: str  # "building", "ready" or "failed"
    percent: int
    step: str

    @property
    def building(self) -> bool:
        return self.state == "building"

    def describe(self) -> str:
        if self.state == "failed":
            return f"Preparing local clusters failed: {self.step} (see var/kube-build.log)."
        if self.state == "ready":
            return "Local clusters are ready."
        return f"Preparing local clusters… {self.percent} % ({self.step})."


def progress_path(var_dir: Path | None = None) -> Path:
    base = var_dir or Path(os.environ.get("KEELSON_VAR_DIR") or Path.cwd() / "var")
    return base / PROGRESS_FILE


def read_progress(var_dir: Path | None = None) -> RuntimeProgress | None:
    """The build's last reported progress, or None when no build was reported.

    A file that is being replaced or was written by hand badly reads as None: progress is a
    hint on a page, never a reason for it to fail."""
    try:
        data = json.loads(progress_path(var_dir).read_text())
        state = str(data["state"])
        percent = max(0, min(100, int(data["percent"])))
        step = str(data.get("step", ""))[:200]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state not in ("building", "ready", "failed"):
        return None
    return RuntimeProgress(state=state, percent=percent, step=step)


def write_progress(path: Path, *, state: str, percent: int, step: str) -> None:
    """Replace the progress file atomically (readers never see half a file)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"state": state, "percent": percent, "step": step}))
    temporary.replace(path)
