"""Pinning a bundled Pod Security Standards policy to a version of the standard, as Pod
Security Admission's `enforce-version` label does: the verdicts follow that version, and
reloading the library (an upgrade of Keelson) keeps them.

The standard's safe sysctls: "net.ipv4.tcp_rmem" and "net.ipv4.tcp_wmem" are allowed from
v1.32 on; before, only the older safe subset is (see tests/unit/policies/test_pss_controls)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps

from accounts.models import Team
from audit.models import AuditEvent
from policies.engine import Snapshot, judge
from policies.models import Policy
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_create, policy_update
from tests.factories import Member

pytestmark = pytest.mark.django_db
TCP_RMEM_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "web", "uid": "u"},
    "spec": {
        "securityContext": {
            "sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]
        },
        "containers": [{"name": "c", "image": "x:1"}],
    },
}


def _violations(policy: Policy, pod: dict[str, Any]) -> int:
    snapshot = Snapshot(objects={("", "Pod"): [pod]}, namespaced={}, cluster={})
    return len(judge(list(policy.rules.all()), snapshot).violations)


@pytest.fixture
def sysctls(team: Team) -> Policy:
    library_load(team=team)
    return Policy.objects.get(team=team, name="pss-baseline-sysctls")


def test_a_new_bundled_policy_checks_the_latest_standard(sysctls: Policy) -> None:
    assert sysctls.pss_version == "latest"
    assert _violations(sysctls, TCP_RMEM_POD) == 0


def test_pinning_checks_that_version_and_survives_a_library_reload(
    operator: Member, sysctls: Policy, team: Team
) -> None:
    # when an operator pins the policy to v1.31 through the API
    changed = operator.api.patch(
        "/api/v1/policies/pss-baseline-sysctls/", {"pss_version": "v1.31"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["pss_version"] == "v1.31"

    # then it checks v1.31: tcp_rmem is not a safe sysctl there; a new generation, audited
    sysctls.refresh_from_db()
    assert (sysctls.pss_version, sysctls.generation) == ("v1.31", 2)
    assert _violations(sysctls, TCP_RMEM_POD) == 1
    event = AuditEvent.objects.filter(action="policy.update").latest("pk")
    assert "pss_version" in event.detail["changed"]

    # when the library is loaded again (an upgrade), the pinned policy is left as it is
    counts = library_load(team=team)
    sysctls.refresh_from_db()
    assert counts.updated == 0
    assert (sysctls.pss_version, sysctls.generation) == ("v1.31", 2)
    assert _violations(sysctls, TCP_RMEM_POD) == 1

    # when it is set back to latest, tcp_rmem is allowed again
    policy_update(
        policy=sysctls,
        spec=PolicySpec(**{**PolicySpec.of(sysctls).__dict__, "pss_version": "latest"}),
        actor=None,
    )
    sysctls.refresh_from_db()
    assert sysctls.generation == 3
    assert _violations(sysctls, TCP_RMEM_POD) == 0


def test_a_control_newer_than_the_pin_accepts_everything(team: Team) -> None:
    # the probe/lifecycle host control exists from v1.34 on
    library_load(team=team)
    probes = Policy.objects.get(team=team, name="pss-baseline-host-probes")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "web", "uid": "u"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x:1",
                    "livenessProbe": {"tcpSocket": {"port": 1, "host": "10.0.0.1"}},
                }
            ]
        },
    }
    assert _violations(probes, pod) == 1
    policy_update(
        policy=probes,
        spec=PolicySpec(**{**PolicySpec.of(probes).__dict__, "pss_version": "v1.33"}),
        actor=None,
    )
    probes.refresh_from_db()
    assert _violations(probes, pod) == 0


def test_only_bundled_pss_policies_can_pin(operator: Member, team: Team) -> None:
    own = policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="host-net",
            standards=["pss-baseline"],
            rules=[
                {"name": "r", "kind": "object", "match": {"kinds": ["Pod"]}, "expression": "true"}
            ],
        ),
    )
    refused = operator.api.patch(
        "/api/v1/policies/host-net/", {"pss_version": "v1.30"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["pss_version"] == [
        "Only the bundled Pod Security Standards policies can pin the standard's version."
    ]
    own.refresh_from_db()
    assert (own.pss_version, own.generation) == ("latest", 1)
    # an unknown version is refused by the API
    library_load(team=team)
    bad = operator.api.patch(
        "/api/v1/policies/pss-baseline-sysctls/", {"pss_version": "v1.12"}, format="json"
    )
    assert bad.status_code == 400
    assert "pss_version" in bad.json()["error"]["fields"]
    # the operational library policies are not Pod Security Standards
    ops = operator.api.patch(
        "/api/v1/policies/ops-probes/", {"pss_version": "v1.30"}, format="json"
    )
    assert ops.status_code == 400
    assert "pss_version" in ops.json()["error"]["fields"]


def test_the_policy_page_shows_the_pinned_version(operator: Member, sysctls: Policy) -> None:
    policy_update(
        policy=sysctls,
        spec=PolicySpec(**{**PolicySpec.of(sysctls).__dict__, "pss_version": "v1.30"}),
        actor=None,
    )
    page = operator.page.get(
        f"/policies/{sysctls.team.name}/pss-baseline-sysctls/"
    ).content.decode()
    assert '<li data-field="pss-version">Pod Security Standards version: v1.30</li>' in page


def test_the_library_migration_adds_the_new_controls_to_existing_teams(team: Team) -> None:
    # given a team whose library predates issue 26 (no host-probes control yet)
    library_load(team=team)
    Policy.objects.filter(team=team, name="pss-baseline-host-probes").delete()
    # when the migration runs
    importlib.import_module("policies.migrations.0011_library_pss_current").load(apps, None)
    # then the control is there, unpinned
    added = Policy.objects.get(team=team, name="pss-baseline-host-probes")
    assert added.bundled and added.pss_version == "latest"
