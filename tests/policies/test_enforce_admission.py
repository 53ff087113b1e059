"""Issue 26, "Enforce, honestly": an object rule in enforce mode blocks what Keelson itself
propagates. Before an application's objects are applied to a cluster (or handed to a pull
cluster's agent), the enabled enforce-mode policies targeting that cluster judge them; a
violation fails the rollout with the violation and nothing is applied. Inform mode, other
clusters and disabled policies block nothing. The policy page and API say what enforce does
for each rule kind.

Pull-mode clusters (the test plays their agent) keep this free of API servers; the same
path on real kube-apiservers is in tests/placement/test_enforced_policies.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Team
from applications import admission
from applications.models import Application, ClusterWork
from applications.propagation import agent_work, work_target
from applications.rollout import rollout_run, rollout_start
from applications.services import application_create, application_version_add
from clusters.models import Cluster, ClusterSet
from core.celery import app as celery_app
from operations.models import Operation
from policies.choices import ENFORCE_EFFECT, Mode, RuleKind
from policies.models import Policy
from policies.services.admission import policy_refusals
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_create, policy_update
from tests.factories import Member, make_cluster
from tests.placement.pull import agent_reports, pull_cluster
from tests.placement.test_rollout_checks import make_due

pytestmark = pytest.mark.django_db
NO_LATEST = "Images must have a tag other than latest (or a digest)."


def manifests(image: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: "{image}", resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}
"""


def deployment(image: str, namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def set_policy(team: Team, name: str, **changes: Any) -> Policy:
    policy = Policy.objects.get(team=team, name=name)
    spec = PolicySpec(**{**PolicySpec.of(policy).__dict__, **changes})
    return policy_update(policy=policy, spec=spec, actor=None)


@pytest.fixture
def library(team: Team) -> Team:
    library_load(team=team)
    return team


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The rollout's next-check messages, kept here instead of sent."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: messages.append(kw))
    return messages


def test_the_policies_checker_is_registered() -> None:
    assert "policies" in admission.registered()


def test_an_enforced_object_rule_refuses_what_violates_it_on_the_clusters_it_targets(
    library: Team,
) -> None:
    # given "no latest tags" enforced on the clusters of set "prod" only
    prod, dev = make_cluster(team=library), make_cluster(team=library)
    ring = ClusterSet.objects.create(name=f"prod-{uuid.uuid4().hex[:6]}", team=library)
    ring.members.add(prod)
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE, cluster_sets=[ring.name])

    # then a Deployment whose pod template uses nginx:latest is refused there, naming the
    # object, the policy and the rule (the rule is a Pod rule: it covers pod templates)
    refusals = policy_refusals(prod, [deployment("nginx:latest")])
    assert [r.as_json() for r in refusals] == [
        {
            "source": "policy ops-image-tags, rule no-latest",
            "kind": "Deployment",
            "namespace": "shop",
            "name": "web",
            "message": NO_LATEST,
        }
    ]
    assert str(refusals[0]) == (
        f"Deployment shop/web: {NO_LATEST} (policy ops-image-tags, rule no-latest)"
    )
    # an untagged image is "latest" too
    assert len(policy_refusals(prod, [deployment("nginx")])) == 1
    # a pinned tag or a digest passes
    assert policy_refusals(prod, [deployment("nginx:1.25")]) == []
    assert policy_refusals(prod, [deployment("nginx@sha256:" + "a" * 64)]) == []
    # a cluster the policy does not target is not blocked
    assert policy_refusals(dev, [deployment("nginx:latest")]) == []
    # and through the registry, which every propagation asks
    assert [r.source for r in admission.run(prod, [deployment("nginx:latest")])] == [
        "policy ops-image-tags, rule no-latest"
    ]


def test_inform_mode_and_disabled_policies_block_nothing(library: Team) -> None:
    cluster = make_cluster(team=library)
    # the library's policies are all in inform mode
    assert policy_refusals(cluster, [deployment("nginx:latest")]) == []
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE, enabled=False)
    assert policy_refusals(cluster, [deployment("nginx:latest")]) == []


def test_templates_and_cluster_rules_in_enforce_mode_do_not_judge_written_objects(
    library: Team,
) -> None:
    # ops-network-policy is a must-have template; ops-min-kubernetes-version a cluster rule
    cluster = make_cluster(team=library)
    set_policy(library, "ops-network-policy", mode=Mode.ENFORCE)
    set_policy(library, "ops-min-kubernetes-version", mode=Mode.ENFORCE)
    assert policy_refusals(cluster, [deployment("nginx:latest")]) == []


def test_a_checker_that_breaks_refuses_rather_than_letting_objects_through(
    library: Team,
) -> None:
    cluster = make_cluster(team=library)

    def broken(cluster: Cluster, objects: list[dict[str, Any]]) -> list[admission.Refusal]:
        raise RuntimeError("database gone")

    admission.register("broken", broken)
    try:
        refusals = admission.run(cluster, [deployment("nginx:1.25")])
    finally:
        admission.unregister("broken")
    assert [str(r) for r in refusals] == ["broken: the check could not run (RuntimeError)"]


def test_a_rollout_violating_an_enforced_rule_fails_before_anything_is_applied(
    library: Team,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given two pull clusters and "no latest tags" enforced on the team's clusters
    one, two = (pull_cluster(library, name, {"ring": "one"}) for name in ("ring-1", "ring-2"))
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE)
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=library,
        name=name,
        namespace=name,
        manifests=manifests("nginx:latest"),
        placement={"selector": "ring=one", "prioritizers": {}},
        rollout={"strategy": "rolling", "max_concurrency": 1},
    )

    # when it is rolled out
    operation = rollout_start(application=application, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk)

    # then the rollout failed with the violation on each cluster, and nothing was applied
    # anywhere (no work, nothing for the agents to fetch)
    operation.refresh_from_db()
    assert operation.state == "failed"
    violation = f"Deployment {name}/web: {NO_LATEST} (policy ops-image-tags, rule no-latest)"
    assert operation.error == (
        "Rollout of version 1 failed: nothing was applied; "
        f"ring-1: refused before apply: {violation}; "
        f"ring-2: refused before apply: {violation}"
    )
    logged = list(operation.log_lines.values_list("text", flat=True))
    assert f"ring-1: refused before apply: {violation}" in logged
    assert not ClusterWork.objects.filter(application=application).exists()
    assert agent_work(cluster=one)["objects"] == []
    # no next check of the rollout was queued; the failure was told to alerts (by name)
    assert [m["queue"] for m in sent] == ["alerts"]

    # when the image is fixed in a new version and rolled out
    application_version_add(actor=None, application=application, manifests=manifests("nginx:1.25"))
    fixed = _roll_out_pull(application, [one, two], django_capture_on_commit_callbacks)

    # then it succeeded and the agents got the fixed Deployment
    assert fixed.state == "succeeded", fixed.error
    objects = agent_work(cluster=two)["objects"]
    assert [o["kind"] for o in objects] == ["Namespace", "Deployment"]
    assert objects[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_work_already_running_is_not_handed_on_once_a_rule_is_enforced(
    library: Team, django_capture_on_commit_callbacks: Callable[..., Any], sent: list[Any]
) -> None:
    # given an application with a latest tag running on a pull cluster (inform mode)
    cluster = pull_cluster(library, "ring-9", {"ring": "one"})
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=library,
        name=name,
        namespace=name,
        manifests=manifests("nginx:latest"),
        placement={"selector": "ring=one", "prioritizers": {}},
    )
    done = _roll_out_pull(application, [cluster], django_capture_on_commit_callbacks)
    assert done.state == "succeeded", done.error
    # when "no latest" is enforced, the agent's next fetch no longer carries it
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE)
    assert agent_work(cluster=cluster)["objects"] == []
    work = ClusterWork.objects.get(application=application)
    assert work.state == "failed"
    assert work.message.startswith("refused before apply: Deployment")


def _roll_out_pull(
    application: Application, clusters: list[Cluster], capture: Callable[..., Any]
) -> Operation:
    """A rollout's checks run here, each cluster's agent reporting it available."""
    operation = rollout_start(application=application, actor=None)
    with capture(execute=True):
        rollout_run(operation_id=operation.pk)
    for _ in range(4 * len(clusters)):
        operation.refresh_from_db()
        if operation.is_final:
            break
        for cluster in clusters:
            if ClusterWork.objects.filter(cluster=cluster, application=application).exists():
                agent_reports(cluster, application)
        make_due(operation)
        with capture(execute=True):
            rollout_run(operation_id=operation.pk)
    operation.refresh_from_db()
    return operation


def test_the_api_and_the_page_say_what_enforce_does_per_rule_kind(
    library: Team, operator: Member
) -> None:
    body = operator.api.get("/api/v1/policies/ops-image-tags/").json()
    assert body["rules"][0]["enforce_effect"] == ENFORCE_EFFECT[RuleKind.OBJECT]
    assert "Blocks Keelson's own propagation" in body["rules"][0]["enforce_effect"]
    assert "reported, not blocked" in body["rules"][0]["enforce_effect"]
    template = operator.api.get("/api/v1/policies/ops-network-policy/").json()
    assert template["rules"][0]["enforce_effect"].startswith("Remediates: must-have")
    cluster_rule = operator.api.get("/api/v1/policies/ops-min-kubernetes-version/").json()
    assert cluster_rule["rules"][0]["enforce_effect"] == (
        "Reports only: there is nothing Keelson can change to meet it."
    )
    page = operator.page.get(f"/policies/{library.name}/ops-image-tags/").content.decode()
    assert (
        '<span class="muted" data-field="enforce-effect">If enforced: Blocks Keelson&#x27;s '
        "own propagation"
    ) in page
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE)
    page = operator.page.get(f"/policies/{library.name}/ops-image-tags/").content.decode()
    assert 'data-field="enforce-effect">Enforced: Blocks' in page


def test_an_agents_pull_withholds_only_the_refused_applications_work(library: Team) -> None:
    # given two applications on a pull cluster, one with a latest tag
    cluster = pull_cluster(library, "ring-7", {"ring": "one"})
    set_policy(library, "ops-image-tags", mode=Mode.ENFORCE)
    works = {}
    for name, image in (("good", "nginx:1.25"), ("bad", "nginx:latest")):
        application = application_create(
            actor=None, team=library, name=name, namespace=name, manifests=manifests(image)
        )
        works[name] = work_target(application=application, cluster=cluster, version=1, replicas=1)
    # when its agent pulls
    pulled = agent_work(cluster=cluster)
    # then it gets the good one only; the other work is failed with why
    assert {(o["kind"], o["metadata"]["name"]) for o in pulled["objects"]} == {
        ("Namespace", "good"),
        ("Deployment", "web"),
    }
    assert {o["metadata"].get("namespace") for o in pulled["objects"]} == {None, "good"}
    bad = ClusterWork.objects.get(pk=works["bad"].pk)
    assert (bad.state, bad.message) == (
        "failed",
        f"refused before apply: Deployment bad/web: {NO_LATEST} "
        "(policy ops-image-tags, rule no-latest)",
    )
    assert ClusterWork.objects.get(pk=works["good"].pk).state == "delivered"


def test_an_object_an_enforced_rule_cannot_judge_is_refused(team: Team) -> None:
    # given an enforced rule that fails on objects without a second container
    cluster = make_cluster(team=team)
    policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="second-container",
            mode=Mode.ENFORCE,
            rules=[
                {
                    "name": "sidecar",
                    "kind": "object",
                    "match": {"kinds": ["apps/Deployment"]},
                    "autogen": False,
                    "expression": "object.spec.template.spec.containers[1].image != ''",
                }
            ],
        ),
    )
    # then such an object is refused, saying why (fail closed)
    refusals = policy_refusals(cluster, [deployment("nginx:1.25")])
    assert len(refusals) == 1
    assert refusals[0].source == "policy second-container, rule sidecar"
    assert refusals[0].message.startswith("could not be judged: ")
