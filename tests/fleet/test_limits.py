"""Keelson's processes raise their open-files limit to the hard limit at start."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _soft_limit_after_import(module: str, soft: int) -> int:
    """Start a Python with the soft limit lowered to `soft`, import `module`, report."""
    code = (
        "import resource\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, hard))\n"
        f"import {module}\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_a_worker_raises_its_soft_limit_to_the_hard_limit() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = hard if hard != resource.RLIM_INFINITY else 65536
    assert _soft_limit_after_import("core.celery", 512) == expected


def test_the_limit_is_never_lowered() -> None:
    import resource

    from core.limits import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_files_limit() >= soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] == hard
