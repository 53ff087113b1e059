"""The previous release (first line of RELEASES) and what git holds of it. The tests that
use it need the repository's history: they fail, saying so, in a shallow clone."""

from __future__ import annotations

import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def previous_release() -> tuple[str, str]:
    """(name, commit) of the previous release, from RELEASES."""
    for line in (REPO / "RELEASES").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, commit = line.split()
            return name, commit
    raise AssertionError("RELEASES names no release")


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)


def release_commit() -> str:
    """The previous release's commit, failing the test when this clone lacks it."""
    name, commit = previous_release()
    if git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        shallow = git("rev-parse", "--is-shallow-repository").stdout.decode().strip()
        pytest.fail(
            f"commit {commit} of release {name} (RELEASES) is not in this clone's history "
            f"(shallow clone: {shallow or 'not a git repository'}): run from a full clone, "
            "or `git fetch --unshallow`"
        )
    return commit


def released_files(pattern: str) -> set[str]:
    """Paths (relative to the repository) of the previous release's files matching the
    shell pattern `pattern` (fnmatch: `*` crosses `/`)."""
    listed = git("ls-tree", "-r", "--name-only", release_commit())
    assert listed.returncode == 0, listed.stderr.decode()
    return {path for path in listed.stdout.decode().split() if fnmatch(path, pattern)}
