"""What a kustomization may name before kubectl runs: files and folders of the checkout
only (patches, generators and bases included), no remote base, no Helm chart."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from gitops.sources import kustomize_build, manifests_at, rendered_manifests


def _refusal(root: Path, kustomization: str) -> str:
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "app" / "kustomization.yaml").write_text(kustomization)
    with pytest.raises(ValidationError) as raised:
        kustomize_build(root, {"path": "app"})
    return raised.value.message_dict["spec.kustomize.path"][0]


@pytest.mark.parametrize(
    ("kustomization", "refusal"),
    [
        (
            "patches:\n- path: ../../secret.yaml\n",
            "app/kustomization.yaml: ../../secret.yaml: outside the repository checkout.",
        ),
        (
            "configMapGenerator:\n- name: c\n  files: [key=../../../etc/passwd]\n",
            "app/kustomization.yaml: ../../../etc/passwd: outside the repository checkout.",
        ),
        (
            "resources:\n- github.com/org/repo//deploy?ref=main\n",
            "app/kustomization.yaml: github.com/org/repo//deploy?ref=main: remote bases are "
            "refused; vendor it into the repository",
        ),
        (
            "components:\n- git@github.com:org/repo.git\n",
            "app/kustomization.yaml: git@github.com:org/repo.git: remote bases are refused; "
            "vendor it into the repository",
        ),
        ("helmCharts:\n- name: x\n", "app/kustomization.yaml: Helm charts are not rendered."),
        ("resources:\n- missing.yaml\n", "app/kustomization.yaml: missing.yaml: no such file"),
    ],
)
def test_a_kustomization_naming_what_is_not_in_the_checkout_is_refused(
    tmp_path: Path, kustomization: str, refusal: str
) -> None:
    root = tmp_path / "checkout"

    assert _refusal(root, kustomization).startswith(refusal)


def test_a_base_is_checked_too(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "base").mkdir(parents=True)
    (root / "base" / "kustomization.yaml").write_text("resources:\n- https://example.com/x\n")

    refusal = _refusal(root, "resources:\n- ../base\n")

    assert refusal.startswith("base/kustomization.yaml: https://example.com/x: remote bases")


def test_manifests_by_path_need_a_checkout_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError) as raised:
        manifests_at(tmp_path, {"path": "empty"})
    assert raised.value.message_dict == {"spec.manifests.path": ["empty: no YAML files there."]}
    with pytest.raises(ValidationError) as raised:
        rendered_manifests({"manifests": {"path": "empty"}}, None)
    assert raised.value.message_dict == {
        "spec.manifests": ["Manifests by path need the repository's checkout."]
    }
    with pytest.raises(ValidationError) as raised:
        rendered_manifests({"manifests": {"path": "/etc"}}, tmp_path)
    assert raised.value.message_dict == {
        "spec.manifests.path": ["/etc: use a path relative to the repository's root."]
    }
