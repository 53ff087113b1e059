"""Kubernetes versions in upgrade runs (pure): parsing, the skip rules, the estimate and the
end-of-life sentence, against a table worked out by hand from the version skew policy
(https://kubernetes.io/releases/version-skew-policy/: one minor version at a time, never
down)."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from clusters.providers.base import Capabilities
from updates.changes.kube_versions import (
    KubeVersion,
    UpgradeFacts,
    already_there,
    eol_sentence,
    estimate_seconds,
    parse_version,
    plan_cluster,
    skip_reason,
    target_version,
)


def facts(version: str, **changes: object) -> UpgradeFacts:
    base: dict[str, object] = {
        "cluster_id": 7,
        "name": "eu-1",
        "provisioned": True,
        "provider": "capi",
        "capabilities": Capabilities(),
        "version": version,
        "nodes": 3,
    }
    return UpgradeFacts(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.28.0", KubeVersion(1, 28, 0)),
        ("v1.27.3", KubeVersion(1, 27, 3)),
        ("v1.29", KubeVersion(1, 29, None)),
        ("v1.29.4-eks-1", KubeVersion(1, 29, 4)),  # as collected from EKS
        ("v1.20.2+k3s1", KubeVersion(1, 20, 2)),
        ("", None),
        ("latest", None),
    ],
)
def test_versions_are_read_with_or_without_v_patch_or_vendor_suffix(
    text: str, expected: KubeVersion | None
) -> None:
    assert parse_version(text) == expected


def test_the_target_is_validated_as_a_cluster_spec_version_and_normalized() -> None:
    assert str(target_version("1.28.0")) == "v1.28.0"
    assert str(target_version("v1.29")) == "v1.29"
    assert str(target_version(" 1.30.1 ")) == "v1.30.1"
    for bad in ("1.28.x", "2.0.0", "v1.28.0-eks-1", "", None, 1.30):  # 1.30 would read 1.3
        with pytest.raises(ValidationError) as caught:
            target_version(bad)
        assert "version" in caught.value.message_dict


@pytest.mark.parametrize(
    ("current", "target", "reason"),
    [
        ("1.27.3", "1.28.0", ""),
        ("1.28.0", "1.28.4", ""),  # a patch upgrade
        ("v1.28", "1.28.2", ""),  # a spec without patch: 1.28.0
        ("1.28.0", "1.28.0", "Already on v1.28.0."),
        ("1.28.3", "1.28", "Already on v1.28.3."),  # a minor target: any 1.28.x is on it
        (
            "1.27",
            "1.29",
            "v1.27 → v1.29 would skip v1.28: Kubernetes upgrades the control plane one minor "
            "version at a time.",
        ),
        (
            "1.26.1",
            "1.29.0",
            "v1.26.1 → v1.29.0 would skip v1.27, v1.28: Kubernetes upgrades the control plane "
            "one minor version at a time.",
        ),
        ("1.29", "1.28", "On v1.29, above the target v1.28: Kubernetes versions do not go down."),
        (
            "1.28.5",
            "1.28.2",
            "On v1.28.5, above the target v1.28.2: Kubernetes versions do not go down.",
        ),
        ("", "1.28.0", "Its current version is not known yet (not collected, not in its spec)."),
    ],
)
def test_skip_rules_by_version(current: str, target: str, reason: str) -> None:
    assert skip_reason(facts(current), target_version(target)) == reason


def test_a_registered_cluster_is_skipped_whatever_its_version() -> None:
    reason = skip_reason(facts("1.27.3", provisioned=False, provider=""), target_version("1.28"))
    assert reason == (
        "eu-1 was registered, not created by Keelson: its lifecycle (and its version) is "
        "managed elsewhere."
    )


def test_the_local_provider_is_skipped_with_its_reason() -> None:
    # given the local provider's capabilities: it runs the one version built on this host
    local = Capabilities(upgrade=False, versions=("v1.20.2",))
    reason = skip_reason(
        facts("v1.20.2", provider="local", capabilities=local), target_version("1.21.0")
    )
    assert reason == "The local provider cannot upgrade clusters: it runs one version (v1.20.2)."
    # and when its binaries are missing, its reason says so
    missing = Capabilities(upgrade=False, unavailable_reason="The binaries are not built")
    reason = skip_reason(
        facts("v1.20.2", provider="local", capabilities=missing), target_version("1.21.0")
    )
    assert reason == "The local provider cannot upgrade clusters: The binaries are not built."


def test_a_provider_not_installed_here_is_a_skip_reason() -> None:
    reason = skip_reason(facts("1.27.3", provider="eks-sdk", capabilities=None), KubeVersion(1, 28))
    assert reason == "Its provider 'eks-sdk' is not installed here."


def test_the_plan_of_one_cluster_shows_from_to_and_the_estimate() -> None:
    # 15 minutes for the control plane and 3 per node: 900 + 3 * 180
    plan = plan_cluster(facts("v1.27.3-eks-2"), target_version("1.28.0"))
    assert (plan.cluster_id, plan.cluster_name) == (7, "eu-1")
    assert (plan.from_value, plan.to_value, plan.skip_reason) == ("v1.27.3", "v1.28.0", "")
    assert plan.estimate_seconds == 1440
    assert plan.detail == {"provider": "capi", "nodes": 3}
    assert estimate_seconds(0) == 900
    assert estimate_seconds(10) == 900 + 1800


def test_already_there_is_what_start_treats_as_nothing_to_do() -> None:
    assert already_there("v1.28.0", target_version("1.28.0"))
    assert already_there("v1.28.3", target_version("1.28"))
    assert not already_there("v1.28.3", target_version("1.28.4"))
    assert not already_there("", target_version("1.28.4"))


def test_end_of_life_reads_past_or_future_from_today() -> None:
    today = date(2026, 12, 5)
    assert (
        eol_sentence(KubeVersion(1, 27, 3), date(2024, 6, 28), today)
        == "v1.27 reached end of life 2024-06-28"
    )
    assert (
        eol_sentence(KubeVersion(1, 35), date(2027, 2, 28), today)
        == "v1.35 reaches end of life 2027-02-28"
    )
    assert eol_sentence(KubeVersion(1, 40), None, today) == "v1.40: no end-of-life date known"
