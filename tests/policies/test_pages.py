"""Policy pages: list with fleet-wide compliance, detail drill-down, editor validation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Team
from policies.models import Policy, PolicyEvaluation
from policies.services.policies import PolicySpec, policy_create
from tests.factories import Member, add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
RULES = """
- name: no-host-network
  kind: object
  match: {kinds: [Pod]}
  expression: "!has(object.spec.hostNetwork) || !object.spec.hostNetwork"
"""


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def policy(team: Team) -> Policy:
    policy = policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="host-net",
            standards=["pss-baseline"],
            rules=[
                {
                    "name": "no-host-network",
                    "kind": "object",
                    "match": {"kinds": ["Pod"]},
                    "expression": "!has(object.spec.hostNetwork)",
                }
            ],
        ),
    )
    for name, status, violations in (
        (
            "eu-1",
            "noncompliant",
            [
                {
                    "rule": "no-host-network",
                    "kind": "Deployment",
                    "namespace": "web",
                    "name": "edge-proxy",
                    "message": "hostNetwork is not allowed",
                    "controller": "",
                }
            ],
        ),
        ("eu-2", "compliant", []),
    ):
        PolicyEvaluation.objects.create(
            policy=policy,
            cluster=make_cluster(team=team, name=name),
            run_id=uuid.uuid4(),
            status=status,
            message=f"{len(violations)} violation(s)",
            violations=violations,
            policy_generation=1,
            evaluated_at=timezone.now(),
        )
    return policy


def test_list_shows_fleet_compliance_and_detail_drills_down(policy: Policy, viewer: Member) -> None:
    client = viewer.page

    listed = client.get("/policies/")
    assert listed.status_code == 200
    text = listed.content.decode()
    assert '<strong data-field="fleet-percent">50.0%</strong>' in text
    assert "/policies/payments/host-net/" in text

    detail = client.get("/policies/payments/host-net/").content.decode()
    assert "Deployment web/edge-proxy" in detail
    assert "hostNetwork is not allowed" in detail
    assert "Evaluate now" not in detail  # a viewer cannot run it


def test_outsiders_get_404_and_viewers_cannot_edit(
    policy: Policy, outsider: Member, viewer: Member
) -> None:
    assert "host-net" not in outsider.page.get("/policies/").content.decode()
    assert outsider.page.get("/policies/payments/host-net/").status_code == 404
    assert outsider.page.post("/policies/payments/host-net/evaluate/").status_code == 404
    assert viewer.page.get("/policies/payments/host-net/edit/").status_code == 403


def test_editor_refuses_bad_cel_with_position_and_saves_good_rules(operator: Member) -> None:
    client = operator.page
    form = {
        "team": "payments",
        "name": "host-net",
        "severity": "high",
        "mode": "inform",
        "enabled": "on",
        "rules": RULES.replace("|| !object", "|| !!!( object"),
    }

    refused = client.post("/policies/new/", form)
    assert refused.status_code == 200
    assert (
        "rule &#x27;no-host-network&#x27;: Invalid CEL at line 1, column"
        in refused.content.decode()
    )
    assert not Policy.objects.exists()

    saved = client.post("/policies/new/", {**form, "rules": RULES})
    assert saved.status_code == 302
    assert saved["Location"] == "/policies/payments/host-net/"
    policy = Policy.objects.get()
    assert policy.severity == "high"

    edited = client.post(
        "/policies/payments/host-net/edit/", {**form, "rules": RULES, "severity": "low"}
    )
    assert edited.status_code == 302
    policy.refresh_from_db()
    assert (policy.severity, policy.generation) == ("low", 2)


def test_cluster_page_loads_its_compliance_card(
    policy: Policy, viewer: Member, outsider: Member
) -> None:
    client = viewer.page
    page = client.get("/clusters/eu-1/").content.decode()
    assert 'hx-get="/policies/cluster/eu-1/compliance/"' in page
    card = client.get("/policies/cluster/eu-1/compliance/").content.decode()
    assert '<strong data-field="cluster-compliance">0.0%</strong>' in card
    assert "/policies/payments/host-net/" in card
    assert outsider.page.get("/policies/cluster/eu-1/compliance/").status_code == 404


def test_same_named_policies_of_two_teams_keep_their_own_counts() -> None:
    """Every team has the bundled library, so a user in two teams sees policies with the
    same name: each keeps its own results on the list page, in the API and on the
    overview."""
    from rest_framework.test import APIClient

    from dashboard.selectors import compliance_overview
    from tests.factories import make_evaluation

    user = make_user()
    now = timezone.now()
    for team_name, noncompliant in (("alpha", 1), ("beta", 3)):
        owner = make_team(name=team_name)
        add_member(owner, user, Role.VIEWER)
        rule = {"name": "r", "kind": "object", "match": {"kinds": ["Pod"]}, "expression": "true"}
        policy = policy_create(
            team=owner, spec=PolicySpec(name="shared-name", rules=[rule]), actor=None
        )
        for index in range(4):
            cluster = make_cluster(team=owner, name=f"{team_name}-{index}")
            status = "noncompliant" if index < noncompliant else "compliant"
            make_evaluation(policy=policy, cluster=cluster, status=status, at=now)

    page = _client(user).get("/policies/").content.decode()
    rows = [row for row in page.split("<tr>") if "/shared-name/" in row]
    assert len(rows) == 2
    alpha, beta = sorted(rows, key=lambda row: "/policies/beta/" in row)
    assert "<td>3</td><td>1</td>" in alpha and "75.0%" in alpha
    assert "<td>1</td><td>3</td>" in beta and "25.0%" in beta

    api = APIClient()
    api.force_authenticate(user)
    listed = api.get("/api/v1/compliance/").json()["policies"]
    assert [(p["team"], p["name"], p["noncompliant"]) for p in listed] == [
        ("alpha", "shared-name", 1),
        ("beta", "shared-name", 3),
    ]

    top = compliance_overview(user=user, now=now)["top"]
    assert [(t["team"], t["policy"], t["noncompliant"]) for t in top] == [
        ("beta", "shared-name", 3),
        ("alpha", "shared-name", 1),
    ]
