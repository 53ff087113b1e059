"""Management commands call the same services as the pages and the API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from clusters.models import Cluster
from localkube.env import LocalCluster
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def test_register_and_collect_from_the_command_line(kube_cluster: LocalCluster) -> None:
    make_team(name="platform")
    out = io.StringIO()
    call_command(
        "cluster_register",
        "cli-1",
        "--team=platform",
        f"--kubeconfig={kube_cluster.control_plane.write_kubeconfig()}",
        "--label=env=prod",
        stdout=out,
    )
    assert "Registered cli-1 (v1.20.2)." in out.getvalue()
    assert Cluster.objects.get(name="cli-1").labels == {"env": "prod"}
    progress = io.StringIO()
    call_command("clusters_collect", stdout=progress)
    assert "[1/1] ready 1" in progress.getvalue()
    assert Cluster.objects.get(name="cli-1").status == "ready"


def test_command_errors_are_clear(tmp_path: Path) -> None:
    make_team(name="platform")
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [")
    with pytest.raises(CommandError, match="invalid: The kubeconfig is not valid YAML"):
        call_command("cluster_register", "cli-2", "--team=platform", f"--kubeconfig={broken}")
    with pytest.raises(CommandError, match="No team named 'nope'"):
        call_command("cluster_register", "cli-2", "--team=nope", "--pull")
    with pytest.raises(CommandError, match="No push-mode cluster named: ghost"):
        call_command("clusters_collect", "ghost")
    assert not Cluster.objects.exists()


@pytest.mark.django_db
def test_key_rotation_reencrypts_credentials(settings: object) -> None:
    from cryptography.fernet import Fernet

    from clusters.choices import CredentialKind
    from clusters.models import ClusterCredential
    from clusters.services.credentials import credential_read, credential_store
    from core.crypto import reset_key_ring
    from kube.client import ConnectionSpec
    from tests.factories import make_cluster

    # given a credential encrypted with the old key
    cluster = make_cluster(team=make_team())
    spec = ConnectionSpec(server="https://a.example:6443", token="rotate-me")
    credential_store(cluster=cluster, spec=spec, kind=CredentialKind.TOKEN)
    before = ClusterCredential.objects.get(cluster=cluster).ciphertext
    old_keys = list(settings.KEELSON_ENCRYPTION_KEYS)  # type: ignore[attr-defined]
    new_key = Fernet.generate_key().decode()
    try:
        # when a new key is put first and the command runs
        settings.KEELSON_ENCRYPTION_KEYS = [new_key, *old_keys]  # type: ignore[attr-defined]
        reset_key_ring()
        call_command("encryption_rotate", stdout=io.StringIO())
        # then the old key can go: the credential decrypts with the new key alone
        settings.KEELSON_ENCRYPTION_KEYS = [new_key]  # type: ignore[attr-defined]
        reset_key_ring()
        assert ClusterCredential.objects.get(cluster=cluster).ciphertext != before
        assert credential_read(cluster=cluster, purpose="test")[0].token == "rotate-me"
    finally:
        settings.KEELSON_ENCRYPTION_KEYS = old_keys  # type: ignore[attr-defined]
        reset_key_ring()
