"""Which cluster URLs Keelson may connect to (SSRF): kube/egress.py's policy."""

from __future__ import annotations

from typing import Any

import pytest

from kube.egress import EgressDenied, check_egress


@pytest.mark.parametrize(
    ("allowlist", "loopback", "url", "allowed"),
    [
        ([], False, "https://10.1.2.3:6443", True),
        ([], False, "https://169.254.169.254/latest/meta-data", False),
        (["0.0.0.0/0"], False, "https://169.254.169.254", False),  # too wide to re-allow it
        (["169.254.10.0/24"], False, "https://169.254.10.5:6443", True),
        ([], False, "https://127.0.0.1:6443", False),
        ([], True, "https://127.0.0.1:6443", True),
        (["10.0.0.0/8"], False, "https://10.1.2.3:6443", True),
        (["10.0.0.0/8"], False, "https://192.168.1.1:6443", False),
        (["*.eks.amazonaws.com"], False, "https://abc.gr7.eu-west-1.eks.amazonaws.com", True),
        (["*.eks.amazonaws.com"], False, "https://10.9.9.9", False),
    ],
)
def test_egress_policy(
    settings: Any, allowlist: list[str], loopback: bool, url: str, allowed: bool
) -> None:
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = allowlist
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = loopback
    if allowed:
        check_egress(url)
    else:
        with pytest.raises(EgressDenied):
            check_egress(url)
