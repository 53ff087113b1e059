"""The two-host tests' namespaces do not outlive a crashed run: the next run deletes them,
with what still runs in them and their veth pairs (benchmarks/netns.py)."""

from __future__ import annotations

import subprocess
import time

import pytest

from benchmarks.netns import PREFIX, ip, namespace_pids, remove_stale

pytestmark = [pytest.mark.netns]


def test_a_crashed_runs_namespace_is_removed_by_the_next_run() -> None:
    # given the namespace of a run whose process is gone, a process and a veth left in it
    gone = subprocess.Popen(["true"])
    gone.wait()
    netns, veth = f"{PREFIX}-{gone.pid}-a", f"kh{gone.pid}a"
    ip("netns", "add", netns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}n", "netns", netns)
        left = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "300"])
        for _ in range(50):
            if namespace_pids(netns):
                break
            time.sleep(0.1)
        assert namespace_pids(netns) == [left.pid]
        # when the next run starts
        removed = remove_stale()
        # then the namespace, its process and its veth are gone
        assert netns in removed
        assert netns not in ip("netns", "list")
        assert left.wait(timeout=10) == -9
        # (the kernel destroys a deleted namespace's devices in the background)
        deadline = time.monotonic() + 30
        while veth in ip("-o", "link") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert veth not in ip("-o", "link")
    finally:
        ip("netns", "del", netns, check=False)


def test_a_live_runs_namespace_is_left_alone() -> None:
    alive = subprocess.Popen(["sleep", "30"])
    netns = f"{PREFIX}-{alive.pid}-b"
    ip("netns", "add", netns)
    try:
        assert netns not in remove_stale()
        assert netns in ip("netns", "list")
    finally:
        alive.kill()
        alive.wait()
        ip("netns", "del", netns, check=False)
