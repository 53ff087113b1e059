"""YAML alias bombs and deep nesting in every place users send YAML (kubeconfigs,
application manifests, policy rules): refused before anything is built, with a short
error that quotes none of the input (kube/safeyaml.py)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from applications.models import Application
from kube.safeyaml import MAX_DEPTH, YAMLInputError, load_all, load_one
from policies.models import Policy
from tests.factories import make_user
from tests.security.members import api_member, page_member


def _bomb(levels: int, indent: str = "") -> str:
    """`levels` anchors, each a list of ten aliases of the one before: the last one names
    10**levels strings. Written out (str(), JSON, an error message) it is
    10**levels * ~7 bytes; the YAML is a few hundred bytes."""
    lines = [f'{indent}l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"{indent}l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_the_bomb_is_small_and_would_expand_to_megabytes() -> None:
    # The expectation of the tests below, worked out: 5 levels name 10**5 strings.
    assert len(_bomb(5)) < 600


def test_aliases_and_deep_nesting_are_refused_by_the_shared_loader() -> None:
    with pytest.raises(YAMLInputError, match="aliases"):
        load_one(_bomb(2), max_bytes=10_000)
    with pytest.raises(YAMLInputError, match="aliases"):
        load_all("a: 1\n---\n" + _bomb(2), max_bytes=10_000)
    with pytest.raises(YAMLInputError, match="nested deeper"):
        load_one("[" * 10_000 + "]" * 10_000, max_bytes=100_000)
    # a control character or a lone surrogate is refused as such, not a server error
    with pytest.raises(YAMLInputError, match="character #x0090 at position 3"):
        load_all("a: \x90", max_bytes=100)
    with pytest.raises(YAMLInputError, match="UTF-8"):
        load_one("a: \ud800", max_bytes=100)
    with pytest.raises(YAMLInputError, match="larger than"):
        load_one("a: " + "x" * 2000, max_bytes=1000)
    # and what Kubernetes objects do use still loads: anchors' absence changes nothing
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_one(nested, max_bytes=10_000) is not None
    assert load_all("a: 1\n---\nb: [2, {c: 3}]\n", max_bytes=100) == [
        {"a": 1},
        {"b": [2, {"c": 3}]},
    ]


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
