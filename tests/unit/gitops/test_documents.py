"""Reading declared objects from YAML: shapes, validation with the API's serializers and
spec checks, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.documents import DocumentErrors, desired_objects, parse_documents, read_files
from gitops.git import path_errors, ref_errors, url_errors

WEB = """\
apiVersion: keelson.io/v1
kind: Application
metadata:
  name: web
spec:
  namespace: shop
  description: The shop
  manifests:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
          - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 50m, memory: 32Mi}}}
---
apiVersion: keelson.io/v1
kind: Placement
metadata:
  name: web
spec:
  selector: env=prod
"""

POLICY = """\
apiVersion: keelson.io/v1
kind: Policy
metadata:
  name: no-latest
spec:
  severity: high
  rules:
  - name: pinned
    kind: object
    match: {kinds: [Pod]}
    expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
    message: Pin the image.
"""


def test_an_application_with_its_placement_and_a_policy_become_desired_objects() -> None:
    # given
    documents = parse_documents([("apps/web.yaml", WEB), ("policies.yaml", POLICY)])

    # when
    desired = desired_objects(documents, team="payments")

    # then: applications first, each with the API's normalized fields
    assert [(d.kind, d.name, d.file, d.line) for d in desired] == [
        ("Application", "web", "apps/web.yaml", 1),
        ("Policy", "no-latest", "policies.yaml", 1),
    ]
    web = desired[0].state
    assert web["namespace"] == "shop"
    assert web["placement"] == {"selector": "env=prod"}
    assert "image: nginx:1.25" in web["manifests"]
    assert web["overrides"] == [] and web["rollout"] == {}
    policy = desired[1].state
    assert policy["severity"] == "high" and policy["mode"] == "inform"
    assert policy["rules"][0]["name"] == "pinned"
    assert policy["rules"][0]["kind"] == "object"


def test_the_line_of_the_second_document_is_where_it_starts() -> None:
    documents = parse_documents([("apps/web.yaml", WEB)])

    assert [(d.kind, d.line) for d in documents] == [("Application", 1), ("Placement", 21)]


def test_a_placement_error_names_the_placement_document() -> None:
    broken = WEB.replace("selector: env=prod", "number_of_clusters: -1")

    with pytest.raises(DocumentErrors) as caught:
        desired_objects(parse_documents([("apps/web.yaml", broken)]), team="payments")

    where = [e.split(": ")[0:2] for e in caught.value.errors]
    assert where == [["apps/web.yaml:21", "Placement web"]]


def test_a_serializer_error_names_file_line_and_field() -> None:
    broken = WEB.replace("namespace: shop", "namespace: Not A Slug!")

    with pytest.raises(DocumentErrors) as caught:
        desired_objects(parse_documents([("apps/web.yaml", broken)]), team="payments")

    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith("apps/web.yaml:1: Application web: spec.namespace: ")


def test_bad_cel_in_a_policy_names_its_document() -> None:
    text = "# policies\n---\n" + POLICY.replace("object.spec", "object.spec ))")

    with pytest.raises(DocumentErrors) as caught:
        desired_objects(parse_documents([("p.yaml", text)]), team="payments")

    assert caught.value.errors[0].startswith("p.yaml:3: Policy no-latest: rules: ")


def test_yaml_errors_unknown_kinds_and_fields_are_all_reported() -> None:
    files = [
        ("a.yaml", "apiVersion: keelson.io/v1\nkind: Application\nmetadata: {name: x}\nspec: [1\n"),
        ("b.yaml", "apiVersion: keelson.io/v1\nkind: Gadget\nmetadata: {name: x}\n"),
        ("c.yaml", "apiVersion: v1\nkind: Policy\nmetadata: {name: x}\n"),
        ("d.yaml", "apiVersion: keelson.io/v1\nkind: Policy\nmetadata: {name: x, team: t}\n"),
    ]

    with pytest.raises(DocumentErrors) as caught:
        parse_documents(files)

    errors = caught.value.errors
    assert errors[0].startswith("a.yaml: not valid YAML at line 5")
    assert errors[1] == (
        "b.yaml:1: kind must be one of ClusterSet, Application, Placement, Overrides, "
        "RolloutStrategy, Policy, RateCard, Budget, ReportDefinition"
    )
    assert errors[2] == "c.yaml:1: apiVersion must be keelson.io/v1"
    assert errors[3].startswith("d.yaml:1: metadata holds only name")


def test_duplicates_and_a_placement_without_its_application_are_refused() -> None:
    placement = WEB.split("---\n")[1]
    files = [("a.yaml", POLICY), ("b.yaml", "\n\n" + POLICY), ("p.yaml", placement)]

    with pytest.raises(DocumentErrors) as caught:
        desired_objects(parse_documents(files), team="payments")

    assert caught.value.errors == [
        "b.yaml:3: Policy no-latest is also declared at a.yaml:1",
        "p.yaml:1: Placement web: no Application web declared",
    ]


def test_read_files_takes_yaml_under_the_folder_and_skips_hidden_and_links(tmp_path: Path) -> None:
    (tmp_path / "fleet" / "apps").mkdir(parents=True)
    (tmp_path / "fleet" / "apps" / "web.yaml").write_text("a: 1\n")
    (tmp_path / "fleet" / "b.yml").write_text("b: 1\n")
    (tmp_path / "fleet" / "README.md").write_text("#\n")
    (tmp_path / "fleet" / ".hidden").mkdir()
    (tmp_path / "fleet" / ".hidden" / "x.yaml").write_text("x: 1\n")
    (tmp_path / "outside.yaml").write_text("secret: 1\n")
    (tmp_path / "fleet" / "link.yaml").symlink_to(tmp_path / "outside.yaml")

    assert read_files(tmp_path, "fleet") == [
        ("fleet/apps/web.yaml", "a: 1\n"),
        ("fleet/b.yml", "b: 1\n"),
    ]
    with pytest.raises(DocumentErrors):
        read_files(tmp_path, "../")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://git.example.com/team/fleet.git", True),
        ("ssh://git@git.example.com/team/fleet.git", True),
        ("git://127.0.0.1:9418/fleet.git", True),
        ("git@github.com:team/fleet.git", True),
        ("file:///etc", False),
        ("ext::sh -c touch% /tmp/x", False),
        ("/srv/git/fleet.git", False),
        ("https://user:token@git.example.com/fleet.git", False),
        ("-uhttps://x", False),
    ],
)
def test_urls(url: str, ok: bool) -> None:
    assert (url_errors(url) == []) is ok


def test_refs_and_paths() -> None:
    assert ref_errors("main") == [] and ref_errors("v1.2.0") == [] and ref_errors("release/1") == []
    assert ref_errors("--upload-pack=x") and ref_errors("a..b") and ref_errors("")
    assert path_errors("") == [] and path_errors("clusters/prod") == []
    assert path_errors("/etc") and path_errors("../x")


def test_a_cluster_set_is_applied_before_what_refers_to_it() -> None:
    text = """\
apiVersion: keelson.io/v1
kind: ClusterSet
metadata: {name: prod}
spec: {selector: env=prod, members: [b, a, a]}
"""
    with_set = POLICY.replace("severity: high", "severity: high\n  cluster_sets: [prod]")

    desired = desired_objects(
        parse_documents([("p.yaml", with_set), ("sets.yaml", text)]), team="payments"
    )

    assert [(d.kind, d.name) for d in desired] == [("ClusterSet", "prod"), ("Policy", "no-latest")]
    assert desired[0].state == {"description": "", "selector": "env=prod", "members": ["a", "b"]}
    assert desired[1].state["cluster_sets"] == ["prod"]


def test_a_cluster_set_with_a_bad_selector_names_its_line() -> None:
    text = (
        "apiVersion: keelson.io/v1\nkind: ClusterSet\nmetadata: {name: prod}\n"
        "spec: {selector: '=x'}\n"
    )

    with pytest.raises(DocumentErrors) as caught:
        desired_objects(parse_documents([("sets.yaml", text)]), team="payments")

    assert caught.value.errors[0].startswith("sets.yaml:1: ClusterSet prod: ")
