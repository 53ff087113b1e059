"""YAML alias bombs and deep nesting in every place users send YAML (kubeconfigs,
application manifests, policy rules): refused before anything is built, with a short
error that quotes none of the input (kube/safeyaml.py)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from applications.models import Application
from policies.models import Policy
from tests.factories import make_user
from tests.security.members import api_member, page_member
from tests.unit.test_safeyaml import bomb as _bomb


def _kubeconfig_with_bomb_as_context_name() -> str:
    return _bomb(5) + (
        "kind: Config\n"
        "contexts:\n"
        "- name: *l5\n"
        "  context: {cluster: c, user: u}\n"
        "clusters: [{name: c, cluster: {server: *l5}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )


@pytest.mark.django_db
def test_kubeconfig_bomb_from_a_user_with_no_team_is_refused_small() -> None:
    # given a user in no team, and a kubeconfig whose context name is 10**5 strings
    user = make_user()
    client = APIClient()
    client.force_authenticate(user)
    text = _kubeconfig_with_bomb_as_context_name()
    # when they ask for its contexts
    response = client.post("/api/v1/clusters/contexts/", {"kubeconfig": text}, format="json")
    # then a 400 that says why, and no echo of the expansion (10**5 * len("'lol', "))
    assert response.status_code == 400
    assert "aliases" in response.content.decode()
    assert len(response.content) < 2000


@pytest.mark.django_db
def test_deeply_nested_kubeconfig_answers_400_not_500() -> None:
    user = make_user()
    client = APIClient()
    client.force_authenticate(user)
    text = "kind: Config\ncontexts: " + "[" * 5000 + "]" * 5000 + "\n"
    response = client.post("/api/v1/clusters/contexts/", {"kubeconfig": text}, format="json")
    assert response.status_code == 400
    assert "nested deeper" in response.content.decode()


@pytest.mark.django_db
def test_manifest_bomb_is_refused_without_echoing_it() -> None:
    client = api_member("payments", Role.OPERATOR)
    manifests = _bomb(5, indent="  ").join(
        [
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nx:\n",
            "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
            "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
            "      - name: web\n        image: nginx\n"
            "        resources: {requests: {cpu: *l5}}\n",
        ]
    )
    response = client.post(
        "/api/v1/applications/",
        {
            "name": "shop",
            "team": "payments",
            "namespace": "shop",
            "manifests": manifests,
            "placement": {"selector": "", "replicas": 1},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "aliases" in response.content.decode()
    assert len(response.content) < 2000
    assert not Application.objects.exists()


@pytest.mark.django_db
def test_policy_rules_bomb_is_refused_and_nothing_is_stored() -> None:
    client = page_member("payments", Role.OPERATOR)
    rules = (
        "- name: no-host-network\n"
        "  kind: object\n"
        "  match: {kinds: [Pod]}\n"
        '  expression: "!has(object.spec.hostNetwork)"\n'
        "  bomb:\n" + _bomb(5, indent="    ")
    )
    form: dict[str, Any] = {
        "team": "payments",
        "name": "host-net",
        "severity": "high",
        "mode": "inform",
        "enabled": "on",
        "rules": rules,
    }
    response = client.post("/policies/new/", form)
    assert response.status_code == 200
    assert "aliases" in response.content.decode()
    assert not Policy.objects.exists()
