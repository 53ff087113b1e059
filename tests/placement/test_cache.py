"""The candidate cache: every change reaches the next call of every process (two caches
play two processes over one database), only changed clusters are reloaded, requested
capacity is re-read within its bounded staleness, a rolled-back change is forgotten, no
cache server is needed, and decisions equal those from a fresh load."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import Team
from applications.cache import CandidateCache
from applications.scheduler import Candidate, schedule
from applications.services import _per_replica, application_create, placement_simulate
from applications.spec import placement_spec
from clusters.models import Cluster, ClusterInventory
from costs.models import ClusterPricing, InstancePrice
from tests.factories import make_cluster, make_team

pytestmark = pytest.mark.django_db(transaction=True)  # changes commit, as in production
GIB = 2**30
CAPACITY = {"allocatable_cpu_millis": 8000, "allocatable_memory_bytes": 32 * GIB}


def _node(name: str, instance_type: str) -> dict[str, Any]:
    capacity = {"cpu_millis": 4000, "memory_bytes": 16 * GIB, "gpu": 0, "pods": 110}
    return {
        "name": name,
        "ready": True,
        "instance_type": instance_type,
        "region": "",
        "capacity": capacity,
        "allocatable": capacity,
    }


@pytest.fixture
def team() -> Team:
    team = make_team(name="fleet")
    for index in range(6):
        cluster = make_cluster(
            team=team,
            name=f"c-{index}",
            status="ready",
            provider="aws",
            region="eu-west-1",
            labels={"env": "prod"},
            **CAPACITY,
        )
        ClusterInventory.objects.create(
            cluster=cluster,
            collected_at=timezone.now(),
            data={"nodes": [_node("a", "m5.xlarge"), _node("b", "m5.xlarge")]},
        )
    return team


def _view(cache: CandidateCache, team: Team) -> dict[str, Candidate]:
    return {
        c.name: c for c in cache.candidates(team_id=team.pk, current=set(), toleration_seconds=300)
    }


def _refresh(cache: CandidateCache, team: Team) -> Any:
    return cache.team(team.pk).refresh(now=timezone.now())


def test_every_change_reaches_every_process_and_only_changed_clusters_reload(team: Team) -> None:
    first, second = CandidateCache(), CandidateCache()
    assert len(_view(first, team)) == len(_view(second, team)) == 6
    assert _refresh(first, team).reloaded == 0  # nothing changed: nothing read
    # label, taint and status changes, written around every service (a queryset update)
    Cluster.objects.filter(name="c-1").update(labels={"env": "dev"})
    Cluster.objects.filter(name="c-2").update(
        taints=[{"key": "gpu", "value": "", "effect": "NoSelect"}]
    )
    Cluster.objects.filter(name="c-3").update(status="unreachable")
    refresh = _refresh(first, team)
    assert (refresh.whole, refresh.reloaded) == (False, 3)
    for cache in (first, second):
        view = _view(cache, team)
        assert view["c-1"].labels == {"env": "dev"}
        assert view["c-2"].taints[0]["key"] == "gpu"
        assert view["c-3"].status == "unreachable"
    # registration, deregistration and a cluster moving to another team
    make_cluster(team=team, name="c-new", status="ready", **CAPACITY)
    Cluster.objects.filter(name="c-4").delete()
    Cluster.objects.filter(name="c-5").update(team=make_team(name="other"))
    assert set(_view(second, team)) == {"c-0", "c-1", "c-2", "c-3", "c-new"}


def test_requested_capacity_is_read_within_its_bounded_staleness(team: Team) -> None:
    cache = CandidateCache()
    with override_settings(KEELSON_PLACEMENT_USAGE_MAX_AGE=3600):
        _view(cache, team)
        Cluster.objects.filter(name="c-0").update(requested_cpu_millis=6000)
        assert _view(cache, team)["c-0"].requested_cpu == 0  # within the staleness allowed
        Cluster.objects.filter(name="c-1").update(status="degraded")
        refresh = _refresh(cache, team)
        assert (refresh.reloaded, refresh.usage) == (1, 0)  # status at once
    with override_settings(KEELSON_PLACEMENT_USAGE_MAX_AGE=0):
        refresh = _refresh(cache, team)
        assert (refresh.whole, refresh.reloaded, refresh.usage) == (False, 0, 1)
        assert _view(cache, team)["c-0"].requested_cpu == D(6)
        assert _view(cache, team)["c-0"].free_cpu == D(2)


def _wait_passes(refresher: Any, passes: int) -> None:
    deadline = time.monotonic() + 15
    while refresher.passes < passes:
        assert time.monotonic() < deadline, "the refresher made no pass in 15 s"
        time.sleep(0.02)


def test_a_background_refresher_reads_usage_off_the_calls_path(team: Team) -> None:
    cache = CandidateCache()
    settings = {"KEELSON_PLACEMENT_USAGE_MAX_AGE": 3600, "KEELSON_PLACEMENT_USAGE_REFRESH": 0.05}
    with override_settings(**settings):
        try:
            assert _view(cache, team)["c-0"].requested_cpu == 0  # the call starts the thread
            refresher = cache.start_refresher(0.05)
            assert refresher.is_alive()
            Cluster.objects.filter(name="c-0").update(requested_cpu_millis=6000)
            Cluster.objects.filter(name="c-1").update(requested_memory_bytes=8 * GIB)
            # a pass that starts after the writes committed has read them
            _wait_passes(refresher, refresher.passes + 2)
            # nothing left for the call itself (usage is 3,600 s from due in the call)
            assert _refresh(cache, team).usage == 0
            view = _view(cache, team)
            assert (view["c-0"].requested_cpu, view["c-0"].free_cpu) == (D(6), D(2))  # 8 - 6
            assert view["c-1"].free_memory == 24 * GIB  # 32 GiB - 8 GiB
            assert view["c-2"].free_cpu == D(8)  # unchanged
            # spec changes are never left to the thread: the next call sees them
            Cluster.objects.filter(name="c-2").update(status="unreachable")
            assert _view(cache, team)["c-2"].status == "unreachable"
        finally:
            cache.stop_refresher()
    assert not refresher.is_alive()


def test_a_usage_pass_older_than_a_calls_read_is_dropped(team: Team) -> None:
    cache = CandidateCache()
    _view(cache, team)
    state = cache.team(team.pk)
    assert state.refresh_usage() == 0  # nothing changed
    Cluster.objects.filter(name="c-0").update(requested_cpu_millis=1000)
    assert state.refresh_usage() == 1
    assert _view(cache, team)["c-0"].free_cpu == D(7)  # 8 - 1

    class CallFirst:
        """The lock a pass takes after its query: meanwhile collection writes again and
        a call reads usage itself (maximum age 0)."""

        def __init__(self, real: Any) -> None:
            self.real, self.armed = real, True

        def __enter__(self) -> Any:
            if self.armed:
                self.armed = False
                Cluster.objects.filter(name="c-0").update(requested_cpu_millis=3000)
                with override_settings(KEELSON_PLACEMENT_USAGE_MAX_AGE=0):
                    assert state.refresh(now=timezone.now()).usage == 1
            return self.real.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            return self.real.__exit__(*exc)

    Cluster.objects.filter(name="c-0").update(requested_cpu_millis=2000)
    real = state.lock
    state.lock = CallFirst(real)  # type: ignore[assignment]
    try:
        assert state.refresh_usage() == 0  # read 2000 before the call read 3000: dropped
    finally:
        state.lock = real
    assert _view(cache, team)["c-0"].free_cpu == D(5)  # 8 - 3, not 8 - 2


def test_prices_follow_pricing_and_list_price_changes(team: Team) -> None:
    cache = CandidateCache()
    before = _view(cache, team)["c-0"].cpu_price
    assert before is not None
    ClusterPricing.objects.create(
        cluster=Cluster.objects.get(name="c-0"), valid_from=date(2020, 1, 1), discount_percent=50
    )
    refresh = _refresh(cache, team)
    assert (refresh.whole, refresh.reloaded) == (False, 1)
    assert _view(cache, team)["c-0"].cpu_price == before / 2
    InstancePrice.objects.create(
        provider="aws", region="", instance_type="m5.xlarge", hourly=D(10), valid_from=date.today()
    )
    assert _refresh(cache, team).whole  # list prices apply to every team: all repriced
    assert _view(cache, team)["c-1"].cpu_price != before
    # a node change (new instance types) reprices that cluster
    inventory = ClusterInventory.objects.get(cluster__name="c-2")
    inventory.data = {"nodes": [_node("a", "unknown-type")]}
    inventory.save()
    assert _refresh(cache, team).reloaded == 1


def test_a_rolled_back_change_is_forgotten(team: Team) -> None:
    cache = CandidateCache()
    _view(cache, team)
    with pytest.raises(RuntimeError), transaction.atomic():
        Cluster.objects.filter(name="c-0").update(labels={"env": "canary"})
        assert _view(cache, team)["c-0"].labels == {"env": "canary"}  # this transaction's view
        raise RuntimeError("rolled back")
    assert _view(cache, team)["c-0"].labels == {"env": "prod"}


def test_placement_needs_no_cache_server(team: Team) -> None:
    application = application_create(
        actor=None,
        team=team,
        name="shop",
        namespace="shop",
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        placement={"selector": "env=prod", "number_of_clusters": 2},
    )
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with override_settings(CACHES=dead):
        decision = placement_simulate(application=application)
    assert [c["cluster"] for c in decision.chosen] == ["c-0", "c-1"]


def test_decisions_with_the_cache_equal_decisions_from_a_fresh_load(team: Team) -> None:
    application = application_create(
        actor=None,
        team=team,
        name="shop",
        namespace="shop",
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        placement={
            "selector": "env=prod",
            "prioritizers": {"least_allocated": 1, "cheapest": 2, "resource_balance": 1},
            "number_of_clusters": 3,
            "replicas": 7,
            "division": "capacity",
        },
    )
    placement_simulate(application=application)  # the process cache is warm
    changes = [
        lambda: Cluster.objects.filter(name="c-0").update(requested_cpu_millis=7000),
        lambda: Cluster.objects.filter(name="c-1").update(status="unreachable"),
        lambda: Cluster.objects.filter(name="c-2").update(labels={"env": "dev"}),
        lambda: make_cluster(
            team=team, name="c-9", status="ready", labels={"env": "prod"}, **CAPACITY
        ),
    ]
    with override_settings(KEELSON_PLACEMENT_USAGE_MAX_AGE=0):
        for change in changes:
            change()
            cached = placement_simulate(application=application).as_json()
            fresh = CandidateCache().candidates(
                team_id=team.pk, current=set(), toleration_seconds=300
            )
            expected = schedule(
                placement_spec(application.placement.spec), fresh, _per_replica(application)
            )
            assert cached == expected.as_json()
