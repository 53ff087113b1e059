"""The one server-side apply path (kube/apply.py) and the discovery under it
(kube/discovery.py), against a real kube-apiserver (1.20 in the test environment)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.apply import apply_manifest, delete_object, get_object, server_side_apply
from kube.client import ClusterConnectError
from kube.discovery import Discovery
from localkube.env import LocalCluster
from tests.clusters.helpers import wait_for

pytestmark = pytest.mark.kube


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }


def test_apply_is_server_side_as_keelson_and_takes_fields_from_other_managers(
    kube_cluster: LocalCluster,
) -> None:
    api = kube_cluster.control_plane.api_client()
    core = k8s.CoreV1Api(api)
    name = f"ssa-{uuid.uuid4().hex[:6]}"
    # given an object someone else created (an Update by another field manager)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": name}, "data": {"a": "theirs"}}, field_manager="someone"
    )
    try:
        # when Keelson applies its own value of the same field
        applied = apply_manifest(api, _config_map(name, {"a": "ours"}))
        # then the conflict was forced: the field is Keelson's, applied (not updated)
        assert applied["data"] == {"a": "ours"}
        managers = {(f["manager"], f["operation"]) for f in applied["metadata"]["managedFields"]}
        assert ("keelson", "Apply") in managers
        live = core.read_namespaced_config_map(name, "default")
        assert live.data == {"a": "ours"}
        assert live.metadata.labels["app.kubernetes.io/managed-by"] == "keelson"
        # and reading it back by apiVersion and kind finds the same object
        found = get_object(
            api, {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "namespace": "default"}
        )
        assert found is not None and found["metadata"]["uid"] == live.metadata.uid
    finally:
        core.delete_namespaced_config_map(name, "default")


def test_a_kind_whose_crd_was_just_applied_is_found_on_the_same_client(
    kube_cluster: LocalCluster,
) -> None:
    api = kube_cluster.control_plane.api_client()
    group = f"t{uuid.uuid4().hex[:6]}.keelson.test"
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {"size": 3},
    }
    ref = {"apiVersion": f"{group}/v1", "kind": "Widget", "name": "w1", "namespace": "default"}
    # given a client that already looked for the kind before its CRD existed
    with pytest.raises(ClusterConnectError) as missing:
        server_side_apply(api, widget)
    assert missing.value.code == "invalid"
    assert f"does not serve Widget in {group}/v1" in missing.value.message
    # when the CRD is applied through the same client
    apply_manifest(
        api,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
    )
    try:
        # then, once the apiserver serves it, an object of the kind applies (discovery of
        # that group version is read again on a miss, not cached as absent for good)
        def applies() -> dict[str, Any] | None:
            try:
                return server_side_apply(api, widget)
            except ClusterConnectError:
                return None

        applied = wait_for(applies, timeout=30, what="the Widget CRD to be served")
        assert applied["spec"] == {"size": 3}
        assert delete_object(api, ref) is True
        assert delete_object(api, ref) is False  # gone already
    finally:
        k8s.ApiextensionsV1Api(api).delete_custom_resource_definition(f"widgets.{group}")


def test_discovery_lists_each_groups_preferred_version_once(kube_cluster: LocalCluster) -> None:
    api = kube_cluster.control_plane.api_client()
    found = Discovery(api).preferred(verbs=frozenset({"list", "delete"}))
    versions: dict[str, set[str]] = {}
    for kind, served in found:
        versions.setdefault(kind, set()).add(served.group_version)
    # core kinds from v1; apps from its preferred apps/v1 only; Namespace deletable
    assert versions["ConfigMap"] == {"v1"} and versions["Namespace"] == {"v1"}
    assert versions["Deployment"] == {"apps/v1"}
    # 1.20 prefers batch/v1 (Job) and serves CronJob only in batch/v1beta1, not preferred
    assert "CronJob" not in versions
    # as the server itself says for the group
    groups = k8s.ApisApi(api).get_api_versions().groups
    batch = next(g for g in groups if g.name == "batch")
    assert batch.preferred_version.group_version == "batch/v1"
    # kinds that cannot be deleted (or listed) are left out
    assert "TokenReview" not in versions and "Binding" not in versions


def test_a_refusal_names_the_object_and_the_servers_reason(kube_cluster: LocalCluster) -> None:
    api = kube_cluster.control_plane.api_client()
    bad = _config_map("bad", {"a": "1"})
    bad["data"] = {"not a key!": "1"}  # ConfigMap keys are [-._a-zA-Z0-9]+
    with pytest.raises(ClusterConnectError) as raised:
        apply_manifest(api, bad)
    assert raised.value.message.startswith("ConfigMap/default/bad: ")
    assert "not a key!" in raised.value.message
    with pytest.raises(ApiException):
        k8s.CoreV1Api(api).read_namespaced_config_map("bad", "default")
