"""Git repository URLs follow the hub's egress policy (core/egress.py), as cluster URLs and
webhooks do: a repository cannot point the hub at a metadata service or, unless allowed,
at the hub's own loopback. Expectations from the policy's documented rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops.git import GitError, _endpoint, egress_errors, git_fetch


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://git.example.com/team/fleet.git", ("git.example.com", 443)),
        ("https://git.example.com:8443/fleet.git", ("git.example.com", 8443)),
        ("ssh://git@10.0.0.7:2222/fleet.git", ("10.0.0.7", 2222)),
        ("git://[2001:db8::1]/fleet.git", ("2001:db8::1", 9418)),
        ("git@github.com:team/fleet.git", ("github.com", 22)),
    ],
)
def test_the_host_and_port_git_connects_to(url: str, endpoint: tuple[str, int]) -> None:
    assert _endpoint(url) == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data.git",  # cloud metadata: always refused
        "git://[::ffff:169.254.169.254]/x.git",  # the same, as an IPv4-mapped address
        "ssh://git@127.0.0.1:22/x.git",  # loopback, not allowed here
        "git@localhost:team/x.git",
    ],
)
def test_refused_hosts(url: str, settings: Any) -> None:
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    assert egress_errors(url), url


def test_an_allowlist_admits_only_what_it_names(settings: Any) -> None:
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["10.20.0.0/16"]
    assert egress_errors("https://10.20.3.4/fleet.git") == []
    assert egress_errors("https://10.99.3.4/fleet.git")


def test_a_refused_url_is_never_fetched(tmp_path: Path, settings: Any) -> None:
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    with pytest.raises(GitError, match=r"may not connect to 127\.0\.0\.1"):
        git_fetch(url="git://127.0.0.1:9/x.git", ref="main", workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()  # nothing was run, not even `git init`
