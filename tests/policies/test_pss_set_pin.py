"""Issue 26: a cluster set pins the Pod Security Standards version its clusters are judged
at, as Pod Security Admission's `enforce-version` namespace label does. Precedence: a
policy's own pin > the cluster's set pin (the oldest when several sets pin) > latest.

The standard's safe sysctls: "net.ipv4.tcp_rmem" and "net.ipv4.tcp_wmem" are allowed from
v1.32 on ("Allowed Values: ... net.ipv4.tcp_rmem (since Kubernetes 1.32), net.ipv4.tcp_wmem
(since Kubernetes 1.32)"); before, they are not in the safe subset."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from clusters.models import Cluster, ClusterSet
from policies.choices import Mode
from policies.engine import Snapshot, judge
from policies.models import ClusterSetPin, Policy
from policies.services.admission import policy_refusals
from policies.services.evaluation.versions import pss_pins, rules_at
from policies.services.library import library_load
from policies.services.pins import cluster_set_pin
from policies.services.policies import PolicySpec, policy_update
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db
SYSCTLS = "pss-baseline-sysctls"
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


def make_set(team: Team, *clusters: Cluster, pin: str | None = None) -> ClusterSet:
    cluster_set = ClusterSet.objects.create(name=f"set-{uuid.uuid4().hex[:6]}", team=team)
    cluster_set.members.add(*clusters)
    if pin:
        cluster_set_pin(cluster_set=cluster_set, pss_version=pin, actor=None)
    return cluster_set


def allows_tcp_rmem(policy: Policy, cluster: Cluster) -> bool:
    """Whether `policy` accepts the tcp_rmem pod on `cluster` (at the version it judges)."""
    pinned = pss_pins([cluster]).get(cluster.pk)
    rules = rules_at(policy, pinned, list(policy.rules.all()))
    snapshot = Snapshot(objects={("", "Pod"): [TCP_RMEM_POD]}, namespaced={}, cluster={})
    return not judge(rules, snapshot).violations


@pytest.fixture
def sysctls(team: Team) -> Policy:
    library_load(team=team)
    return Policy.objects.get(team=team, name=SYSCTLS)


def pin_policy(policy: Policy, version: str) -> Policy:
    spec = PolicySpec(**{**PolicySpec.of(policy).__dict__, "pss_version": version})
    return policy_update(policy=policy, spec=spec, actor=None)


def test_a_set_pin_judges_its_clusters_at_that_version(team: Team, sysctls: Policy) -> None:
    # given a cluster in a set pinned to v1.31 and one in no pinned set
    pinned, free = make_cluster(team=team), make_cluster(team=team)
    make_set(team, pinned, pin="v1.31")
    make_set(team, free)
    # then the unpinned policy judges the pinned cluster at v1.31 (tcp_rmem not safe yet)
    # and the other at latest (safe)
    assert sysctls.pss_version == "latest"
    assert pss_pins([pinned, free]) == {pinned.pk: "v1.31"}
    assert not allows_tcp_rmem(sysctls, pinned)
    assert allows_tcp_rmem(sysctls, free)


def test_the_policys_own_pin_wins_over_the_sets(team: Team, sysctls: Policy) -> None:
    cluster = make_cluster(team=team)
    make_set(team, cluster, pin="v1.31")
    sysctls = pin_policy(sysctls, "v1.32")
    assert allows_tcp_rmem(sysctls, cluster)  # v1.32: tcp_rmem is safe
    sysctls = pin_policy(sysctls, "v1.30")
    assert not allows_tcp_rmem(sysctls, cluster)


def test_a_cluster_in_several_pinned_sets_is_judged_at_the_oldest(
    team: Team, sysctls: Policy
) -> None:
    cluster = make_cluster(team=team)
    make_set(team, cluster, pin="v1.33")
    make_set(team, cluster, pin="v1.31")
    make_set(team, cluster)  # not pinned: does not count as "latest"
    assert pss_pins([cluster]) == {cluster.pk: "v1.31"}
    assert not allows_tcp_rmem(sysctls, cluster)


def test_a_selector_set_pins_the_clusters_it_selects(team: Team, sysctls: Policy) -> None:
    edge = make_cluster(team=team, labels={"tier": "edge"})
    core = make_cluster(team=team, labels={"tier": "core"})
    selected = ClusterSet.objects.create(name="edge-set", team=team, selector="tier=edge")
    cluster_set_pin(cluster_set=selected, pss_version="v1.29", actor=None)
    assert pss_pins([edge, core]) == {edge.pk: "v1.29"}


def test_operational_policies_do_not_follow_set_pins(team: Team, sysctls: Policy) -> None:
    cluster = make_cluster(team=team)
    make_set(team, cluster, pin="v1.29")
    ops = Policy.objects.get(team=team, name="ops-image-tags")
    stored = list(ops.rules.all())
    assert rules_at(ops, "v1.29", stored) is stored


def test_every_version_of_a_pss_policy_matches_the_same_kinds() -> None:
    # evaluation lists the kinds of a policy's stored rules once per cluster, then judges
    # each cluster at its pinned version: the versions may differ only in expressions
    from policies.library import PSS_VERSION_CHOICES, is_versioned, library

    for latest in library("latest"):
        if not is_versioned(latest):
            continue
        for version in PSS_VERSION_CHOICES:
            entry = next(p for p in library(version) if p["name"] == latest["name"])
            assert [(r["name"], r["match"], r.get("autogen", True)) for r in entry["rules"]] == [
                (r["name"], r["match"], r.get("autogen", True)) for r in latest["rules"]
            ], (latest["name"], version)


def test_enforcement_before_apply_follows_the_set_pin(team: Team, sysctls: Policy) -> None:
    pinned, free = make_cluster(team=team), make_cluster(team=team)
    make_set(team, pinned, pin="v1.31")
    sysctls.refresh_from_db()
    policy_update(
        policy=sysctls,
        spec=PolicySpec(**{**PolicySpec.of(sysctls).__dict__, "mode": Mode.ENFORCE}),
        actor=None,
    )
    assert [r.source for r in policy_refusals(pinned, [TCP_RMEM_POD])] == [
        "policy pss-baseline-sysctls, rule sysctls"
    ]
    assert policy_refusals(free, [TCP_RMEM_POD]) == []


def _pin_url(cluster_set: ClusterSet) -> str:
    return f"/api/v1/pss-pins/{cluster_set.name}/"


def test_the_api_pins_and_unpins_a_set(
    team: Team, sysctls: Policy, operator: Member, viewer: Member
) -> None:
    cluster_set = make_set(team, make_cluster(team=team))
    # unpinned: latest
    assert operator.api.get(_pin_url(cluster_set)).json() == {
        "cluster_set": cluster_set.name,
        "team": team.name,
        "pss_version": "latest",
    }
    # a viewer may not pin
    assert viewer.api.put(_pin_url(cluster_set), {"pss_version": "v1.29"}).status_code == 403
    # an unknown version is refused, nothing changed
    bad = operator.api.put(_pin_url(cluster_set), {"pss_version": "v1.12"}, format="json")
    assert bad.status_code == 400
    assert "pss_version" in bad.json()["error"]["fields"]
    assert not ClusterSetPin.objects.exists()
    # the operator pins it: stored and audited
    pinned = operator.api.put(_pin_url(cluster_set), {"pss_version": "v1.29"}, format="json")
    assert pinned.status_code == 200, pinned.content
    assert pinned.json()["pss_version"] == "v1.29"
    pin = ClusterSetPin.objects.get(cluster_set=cluster_set)
    assert (pin.pss_version, pin.set_by_id) == ("v1.29", operator.user.pk)
    event = AuditEvent.objects.filter(action="policy.pss_pin").latest("pk")
    assert event.detail == {
        "cluster_set": cluster_set.name,
        "before": "latest",
        "pss_version": "v1.29",
    }
    listed = operator.api.get("/api/v1/pss-pins/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {"cluster_set": cluster_set.name, "team": team.name, "pss_version": "v1.29"} in rows
    # DELETE (or "latest") removes the pin
    removed = operator.api.delete(_pin_url(cluster_set))
    assert removed.status_code == 200
    assert removed.json()["pss_version"] == "latest"
    assert not ClusterSetPin.objects.exists()


def test_the_policy_page_names_the_pinned_sets(
    team: Team, sysctls: Policy, operator: Member
) -> None:
    cluster_set = make_set(team, make_cluster(team=team), pin="v1.30")
    page = operator.page.get(f"/policies/{team.name}/{SYSCTLS}/").content.decode()
    assert (
        '<li data-field="pss-version">Pod Security Standards version: latest '
        f"(clusters of pinned sets at their pin: {cluster_set.name} v1.30)</li>"
    ) in page
