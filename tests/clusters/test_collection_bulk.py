"""A shard recorded in bulk, the inventory cadence of scheduled collection, and samples
written from plain tuples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from clusters.choices import ClusterStatus, CredentialKind
from clusters.models import (
    Cluster,
    ClusterCredential,
    ClusterInventory,
    ClusterTransition,
    HealthSample,
)
from clusters.services.collection import (
    ProbeResult,
    _inventory_due,
    _record_shard,
    clusters_collect,
)
from clusters.services.credentials import (
    cluster_api_client,
    cluster_api_clients,
    credential_store,
)
from clusters.services.history import SAMPLE_COLUMNS, samples_copy, samples_insert
from kube.client import ClusterConnectError, ConnectionSpec, build_api_client
from kube.inventory import _timestamp, collect
from localkube.env import LocalCluster
from tests.clusters.helpers import register_local
from tests.factories import make_cluster, make_team
from tests.support import free_port, self_signed_pem

pytestmark = pytest.mark.django_db

Capture = Callable[..., Any]


def _collected_at(cluster: Cluster) -> Any:
    return ClusterInventory.objects.get(cluster=cluster).collected_at


def _one_slot(settings: Any) -> int:
    """An interval so long (11.6 days) that every scheduled pass of the test falls in the
    same slot, which is returned; a cluster is in its slot when (slot + pk) % N == 0."""
    settings.KEELSON_COLLECT_INTERVAL = 10**6
    return int(timezone.now().timestamp()) // settings.KEELSON_COLLECT_INTERVAL


@pytest.mark.kube
def test_scheduled_passes_read_health_every_time_and_the_inventory_when_due(
    kube_cluster: LocalCluster, settings: Any
) -> None:
    # given a cluster collected once (a direct call reads everything)
    cluster = register_local(kube_cluster, team=make_team(), name="cadence")
    clusters_collect(cluster_ids=[cluster.pk])
    first = _collected_at(cluster)
    inventory = ClusterInventory.objects.get(cluster=cluster).data
    assert inventory["namespaces"] and inventory["workloads"]["deployments"]["total"] >= 0
    position = _one_slot(settings) + cluster.pk

    # when a scheduled pass runs outside the cluster's inventory slot
    settings.KEELSON_COLLECT_INVENTORY_EVERY = position + 2  # position % N != 0
    clusters_collect(cluster_ids=[cluster.pk], scheduled=True)
    # then health is recorded, the stored inventory is left as it was
    cluster.refresh_from_db()
    assert cluster.last_probe_at is not None and cluster.last_probe_at > first
    assert cluster.status == ClusterStatus.READY
    assert HealthSample.objects.filter(cluster=cluster).count() == 2
    assert _collected_at(cluster) == first
    assert (
        ClusterInventory.objects.get(cluster=cluster).data["namespaces"]
        == (inventory["namespaces"])
    )

    # when the cluster changed shape since (its row says another version: as after an
    # upgrade), the full inventory is read at once, off-slot
    Cluster.objects.filter(pk=cluster.pk).update(kubernetes_version="v1.19.0")
    clusters_collect(cluster_ids=[cluster.pk], scheduled=True)
    cluster.refresh_from_db()
    assert cluster.kubernetes_version == "v1.20.2"
    second = _collected_at(cluster)
    assert second > first

    # and in its slot the full inventory is read too
    settings.KEELSON_COLLECT_INVENTORY_EVERY = position  # position % N == 0
    clusters_collect(cluster_ids=[cluster.pk], scheduled=True)
    assert _collected_at(cluster) > second


def test_inventory_due_spreads_clusters_over_the_intervals(settings: Any) -> None:
    team = make_team()
    fresh, stale, never = (make_cluster(team=team) for _ in range(3))
    settings.KEELSON_COLLECT_INTERVAL = 30
    settings.KEELSON_COLLECT_INVENTORY_EVERY = 10
    now = timezone.now()
    ClusterInventory.objects.create(cluster=fresh, collected_at=now - timedelta(seconds=60))
    ClusterInventory.objects.create(cluster=stale, collected_at=now - timedelta(seconds=331))
    ids = [fresh.pk, stale.pk, never.pk]
    slot = int(now.timestamp()) // 30

    due_in = {
        offset: _inventory_due(ids, now + timedelta(seconds=30 * offset)) for offset in range(10)
    }
    # a cluster with a recent inventory is due in exactly one of ten intervals: its own
    assert [offset for offset, due in due_in.items() if fresh.pk in due] == [
        (-slot - fresh.pk) % 10
    ]
    # one without an inventory, or whose slot was missed (older than N + 1 intervals),
    # is due at once
    assert all(stale.pk in due and never.pk in due for due in due_in.values())
    settings.KEELSON_COLLECT_INVENTORY_EVERY = 1
    assert _inventory_due(ids, now) == set(ids)


@pytest.mark.kube
def test_a_shard_is_recorded_in_one_bulk_write(
    kube_cluster: LocalCluster, django_capture_on_commit_callbacks: Capture
) -> None:
    # given a reachable cluster and one whose API server does not answer
    team = make_team()
    alive = register_local(kube_cluster, team=team, name="bulk-alive")
    dead = make_cluster(team=team, name="bulk-dead")
    server = f"https://127.0.0.1:{free_port()}"
    Cluster.objects.filter(pk=dead.pk).update(api_server_url=server)
    credential_store(
        cluster=dead, spec=ConnectionSpec(server=server, token="t"), kind=CredentialKind.TOKEN
    )

    # when both are collected in one shard
    with django_capture_on_commit_callbacks(execute=False) as first_pass:
        counts = clusters_collect(cluster_ids=[alive.pk, dead.pk])
    # then each row, transition and sample is what the probe saw
    assert counts == {"ready": 1, "unreachable": 1}
    alive.refresh_from_db()
    dead.refresh_from_db()
    seen = collect(cluster_api_client(cluster=alive))
    assert (alive.status, dead.status) == ("ready", "unreachable")
    assert alive.node_count == len(seen.nodes) and alive.nodes_ready == seen.nodes_ready
    assert alive.capacity_cpu_millis == seen.total("capacity", "cpu_millis")
    assert alive.allocatable_memory_bytes == seen.total("allocatable", "memory_bytes")
    assert alive.kubernetes_version == seen.kubernetes_version
    assert alive.status_changed_at == alive.last_probe_at == alive.last_seen_at
    assert [c["type"] for c in alive.conditions] == ["NodesReady", "PodsHealthy", "APIResponsive"]
    assert dead.status_reason == "ProbeFailed" and "Cannot connect to" in dead.status_message
    assert dead.last_seen_at is None and dead.node_count == 0
    assert dead.conditions[0]["type"] == "APIReachable"
    assert set(
        ClusterTransition.objects.filter(cluster__in=[alive, dead]).values_list(
            "cluster__name", "from_status", "to_status"
        )
    ) == {("bulk-alive", "unknown", "ready"), ("bulk-dead", "unknown", "unreachable")}
    samples = {s.cluster_id: s for s in HealthSample.objects.filter(cluster__in=[alive, dead])}
    assert samples[alive.pk].at == alive.last_probe_at
    assert samples[alive.pk].nodes_total == len(seen.nodes)
    assert samples[alive.pk].pods_running == seen.pods_by_phase.get("Running", 0)
    assert (samples[dead.pk].status, samples[dead.pk].api_latency_ms) == ("unreachable", None)
    assert ClusterInventory.objects.filter(cluster=alive).exists()
    assert not ClusterInventory.objects.filter(cluster=dead).exists()
    # browsers are told about both; only the reachable one is evaluated at once, and its
    # policy engines' results are read (Kyverno, Gatekeeper: every collection); alerts is
    # told about both status changes in one message
    assert len(first_pass) == 5

    # when nothing changed at the next pass, nobody is told anything; only the engines'
    # results are read again (they change without the cluster changing)
    with django_capture_on_commit_callbacks(execute=False) as second_pass:
        clusters_collect(cluster_ids=[alive.pk, dead.pk])
    assert [c.__qualname__ for c in second_pass] == ["_read_engines_soon.<locals>.send"]
    assert HealthSample.objects.filter(cluster__in=[alive, dead]).count() == 4


def test_a_late_result_is_dropped_and_hysteresis_holds_in_bulk() -> None:
    cluster = make_cluster(team=make_team())
    now = timezone.now()
    failure = ClusterConnectError("unreachable", "Cannot connect.")

    def record(seconds: int) -> list[Any]:
        at = now + timedelta(seconds=seconds)
        return _record_shard([ProbeResult(cluster.pk, at, error=failure)])

    assert len(record(0)) == 1  # never seen: the first observation counts at once
    assert record(-10) == []  # older than what is recorded
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.UNREACHABLE and cluster.last_probe_at == now
    assert HealthSample.objects.filter(cluster=cluster).count() == 1


def test_samples_from_tuples_are_stored_as_the_model_path_stores_them() -> None:
    team = make_team()
    one, two = make_cluster(team=team), make_cluster(team=team)
    at = timezone.now().replace(microsecond=654321)
    rows = [
        (None, at, "ready", 12.25, 3, 2, 7, 1, 1, 1500, 3 * 2**30, 4),
        (None, at, "unreachable", None, 0, 0, 0, 0, 0, 0, 0, 0),
    ]
    assert samples_copy([(one.pk, *row[1:]) for row in rows]) == 2
    models = [
        HealthSample(**dict(zip(SAMPLE_COLUMNS, (two.pk, *row[1:]), strict=True))) for row in rows
    ]
    assert samples_insert(models) == 2

    def stored(cluster: Cluster) -> list[tuple[Any, ...]]:
        columns = SAMPLE_COLUMNS[1:]
        return list(
            HealthSample.objects.filter(cluster=cluster).order_by("id").values_list(*columns)
        )

    assert stored(one) == stored(two) == [row[1:] for row in rows]
    assert samples_copy([]) == 0
    with pytest.raises(ValueError, match="cluster and time"):
        samples_copy([rows[0]])


@pytest.mark.kube
def test_probes_keep_tls_verification_and_say_why_they_failed(
    kube_cluster: LocalCluster,
) -> None:
    # given clusters registered with a CA that signed nothing of the server's, with a
    # token the API server rejects, and with one that may read nothing
    plane = kube_cluster.control_plane
    team = make_team()
    specs = {
        "bad-ca": ConnectionSpec(server=plane.server, token=plane.token, ca_data=self_signed_pem()),
        "bad-token": ConnectionSpec(
            server=plane.server, token="not-a-valid-token-123", ca_data=plane.ca_file.read_text()
        ),
        "no-rights": ConnectionSpec(
            server=plane.server, token=plane.unprivileged_token, ca_data=plane.ca_file.read_text()
        ),
    }
    clusters = {}
    for name, spec in specs.items():
        clusters[name] = make_cluster(team=team, name=name, api_server_url=plane.server)
        credential_store(cluster=clusters[name], spec=spec, kind=CredentialKind.TOKEN)
    # when collected
    clusters_collect(cluster_ids=[c.pk for c in clusters.values()])
    # then neither is read, and each says why, without its token
    rows = {c.name: c for c in Cluster.objects.filter(team=team)}
    assert {name: (c.status, c.status_reason) for name, c in rows.items()} == {
        "bad-ca": ("unreachable", "TLSFailed"),
        "bad-token": ("unreachable", "Unauthorized"),
        "no-rights": ("unreachable", "Forbidden"),
    }
    assert "rejected the credentials (401 Unauthorized)" in rows["bad-token"].status_message
    assert "not-a-valid-token-123" not in rows["bad-token"].status_message
    assert plane.token not in rows["bad-ca"].status_message


def test_warning_times_are_spelled_as_before() -> None:
    """The client's models printed event times as datetimes; stored inventories keep that."""
    assert _timestamp({"lastTimestamp": "2024-05-01T10:00:00Z"}) == "2024-05-01 10:00:00+00:00"
    assert _timestamp({"eventTime": "2024-05-01T10:00:00.123456Z"}) == (
        "2024-05-01 10:00:00.123456+00:00"
    )
    assert _timestamp({}) == ""


def test_clusters_at_one_endpoint_with_one_trust_share_connections() -> None:
    """Clusters behind one proxy or gateway reuse its keep-alive connections; a different
    CA, client identity or endpoint never shares them."""
    base = ConnectionSpec(server="https://gw.example:6443/c/1", ca_data="CA1", token="a")
    same = ConnectionSpec(server="https://gw.example:6443/c/2", ca_data="CA1", token="b")
    others = [
        ConnectionSpec(server="https://gw.example:6443/c/3", ca_data="CA2", token="a"),
        ConnectionSpec(server="https://gw.example:7443/c/1", ca_data="CA1", token="a"),
        ConnectionSpec(server="https://other.example:6443/c/1", ca_data="CA1", token="a"),
        ConnectionSpec(
            server="https://gw.example:6443/c/4", ca_data="CA1", insecure_skip_tls_verify=True
        ),
    ]
    first, second = build_api_client(base), build_api_client(same)
    assert first.rest_client is second.rest_client
    assert first.configuration.api_key != second.configuration.api_key  # own token each
    assert all(build_api_client(spec).rest_client is not first.rest_client for spec in others)


def test_a_batch_decrypts_each_credential_once_with_one_audit_record_each(
    django_assert_max_num_queries: Any,
) -> None:
    """A worker's first pass decrypts many credentials: one query reads them and one insert
    audits every decryption; a second pass uses the cached clients and decrypts nothing. A
    broken credential fails its own cluster only."""
    from audit.models import AuditEvent
    from kube.client import clients

    team = make_team()
    fleet = [
        make_cluster(team=team, api_server_url=f"https://10.9.0.{i}:6443") for i in range(1, 6)
    ]
    for i, cluster in enumerate(fleet):
        credential_store(
            cluster=cluster,
            spec=ConnectionSpec(server=cluster.api_server_url, token=f"t-{i}"),
            kind=CredentialKind.TOKEN,
        )
    broken = fleet[-1]
    ClusterCredential.objects.filter(cluster=broken).update(ciphertext="not-a-token")
    for cluster in fleet:
        clients.drop(cluster.pk)
    reads = AuditEvent.objects.filter(action="cluster.credential.read")
    before = reads.count()
    with django_assert_max_num_queries(3):  # versions, credentials, one audit insert
        built, failed = cluster_api_clients(clusters=fleet)
    assert [c.pk for c, _ in built] == [c.pk for c in fleet[:-1]]
    assert [(c.pk, e.code) for c, e in failed] == [(broken.pk, "invalid")]
    assert "not-a-token" not in failed[0][1].message
    audited = list(reads.order_by("id")[before:])
    assert [e.target_id for e in audited] == [str(c.pk) for c in fleet[:-1]]
    assert all(e.team_id == team.pk and e.detail["purpose"] == "api-client" for e in audited)
    assert [api.configuration.host for _, api in built] == [c.api_server_url for c in fleet[:-1]]
    again, _ = cluster_api_clients(clusters=fleet[:-1])
    assert [api for _, api in again] == [api for _, api in built]
    assert reads.count() == before + 4
