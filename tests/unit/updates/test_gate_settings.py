"""Gate settings are normalized or refused naming the field; conditions, replicas and the
Prometheus expression are judged as Kubernetes and Prometheus define them."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from updates.gates import gates_validate, unhealthy_conditions
from updates.gates_prometheus import promql
from updates.gates_workloads import _healthy, _replicas, _shown

PROMETHEUS = {"url": "http://192.0.2.10:9090", "query": "job:errors:ratio5m", "max": 0.05}


def test_defaults_turn_the_three_gates_on_and_prometheus_off() -> None:
    expected = {"workloads": True, "conditions": True, "policies": True, "prometheus": None}
    assert gates_validate({}) == expected
    assert gates_validate(None) == expected  # type: ignore[arg-type]


def test_prometheus_settings_are_kept_with_for_seconds_defaulting_to_zero() -> None:
    normalized = gates_validate({"policies": False, "prometheus": PROMETHEUS})
    assert normalized["policies"] is False and normalized["workloads"] is True
    assert normalized["prometheus"] == {**PROMETHEUS, "for_seconds": 0}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ("yes", "gates"),
        ({"readiness": True}, "gates.readiness"),
        ({"workloads": "true"}, "gates.workloads"),
        ({"prometheus": "http://192.0.2.10:9090"}, "gates.prometheus"),
        ({"prometheus": {**PROMETHEUS, "url": "ftp://192.0.2.10/"}}, "gates.prometheus.url"),
        ({"prometheus": {**PROMETHEUS, "url": "http://169.254.169.254/"}}, "gates.prometheus.url"),
        ({"prometheus": {**PROMETHEUS, "url": "http://u:p@192.0.2.10/"}}, "gates.prometheus.url"),
        ({"prometheus": {**PROMETHEUS, "query": " "}}, "gates.prometheus.query"),
        ({"prometheus": {**PROMETHEUS, "max": "0.05"}}, "gates.prometheus.max"),
        ({"prometheus": {**PROMETHEUS, "max": float("nan")}}, "gates.prometheus.max"),
        ({"prometheus": {**PROMETHEUS, "for_seconds": -1}}, "gates.prometheus.for_seconds"),
        ({"prometheus": {**PROMETHEUS, "step": 5}}, "gates.prometheus.step"),
    ],
)
def test_bad_settings_name_their_field(config: Any, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        gates_validate(config)
    assert field in raised.value.message_dict


def test_loopback_prometheus_only_where_the_setting_allows(settings: Any) -> None:
    local = {"prometheus": {**PROMETHEUS, "url": "http://127.0.0.1:9090"}}
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationError) as raised:
        gates_validate(local)
    assert "loopback" in raised.value.message_dict["gates.prometheus.url"][0]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = True
    assert gates_validate(local)["prometheus"]["url"] == "http://127.0.0.1:9090"


def test_unhealthy_conditions_follow_each_type_polarity() -> None:
    conditions = [
        {"type": "NodesReady", "status": "True", "reason": "AllNodesReady", "message": "2 of 2"},
        {"type": "PodsHealthy", "status": "False", "reason": "PodsFailing", "message": "3 failing"},
        {"type": "Degraded", "status": "True", "reason": "ControlPlane", "message": ""},
        {"type": "MemoryPressure", "status": "False", "reason": "Fine", "message": ""},
    ]
    assert unhealthy_conditions(conditions) == {
        "PodsHealthy": "PodsHealthy=False (PodsFailing: 3 failing)",
        "Degraded": "Degraded=True (ControlPlane)",
    }
    assert unhealthy_conditions(None) == {}


def test_replicas_as_the_controllers_report_them() -> None:
    # A Deployment rolling out a crash-looping template: the old pods stay available
    # (maxUnavailable 25 % of 2 rounds down to 0), the new one never does.
    stuck = {"spec": {"replicas": 2}, "status": {"availableReplicas": 2, "updatedReplicas": 1}}
    assert _replicas("Deployment", stuck) == [2, 2, 1, 0] and not _healthy([2, 2, 1, 0])
    # spec.replicas defaults to 1; a StatefulSet on 1.20 reports readyReplicas only
    sts = {"spec": {}, "status": {"readyReplicas": 1, "updatedReplicas": 1}}
    assert _replicas("StatefulSet", sts) == [1, 1, 1, 0] and _healthy([1, 1, 1, 0])
    daemons = {
        "status": {"desiredNumberScheduled": 3, "numberAvailable": 2, "updatedNumberScheduled": 3}
    }
    assert _replicas("DaemonSet", daemons) == [3, 2, 3, 0] and not _healthy([3, 2, 3, 0])
    assert _healthy([0, 0, 0, 0])  # scaled to zero wants nothing
    assert _healthy([2, 2, 2]) and not _healthy([2, 2, 1])  # baselines stored before `old`


def test_a_one_replica_rollout_is_unfinished_while_its_old_pod_runs() -> None:
    # maxSurge 25 % of 1 rounds up to 1, maxUnavailable down to 0: the crash-looping new
    # pod counts as updated and the old one stays available; kubectl rollout status waits
    # ("1 old replicas are pending termination"), and so does the gate
    rolling = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    assert _replicas("Deployment", rolling) == [1, 1, 1, 1]
    assert not _healthy([1, 1, 1, 1])
    assert _shown([1, 1, 1, 1]) == (
        "1 of 1 replicas available, 1 of 1 on its current template, 1 old replica still running"
    )
    # a spec change the controller has not observed yet: its counts are the old template's
    unseen = {**rolling, "metadata": {"generation": 3}}
    unseen["status"] = {**rolling["status"], "replicas": 1}
    assert _replicas("Deployment", unseen) == [1, 1, 0, 1] and not _healthy([1, 1, 0, 1])
    done = {**rolling, "status": {**rolling["status"], "replicas": 1}}
    assert _replicas("Deployment", done) == [1, 1, 1, 0] and _healthy([1, 1, 1, 0])


def test_for_seconds_asks_prometheus_for_the_minimum_over_the_window() -> None:
    assert promql("rate(errors[5m])", 0) == "rate(errors[5m])"
    assert promql("rate(errors[5m])", 120) == "min_over_time((rate(errors[5m]))[120s:])"
    assert promql('up{cluster="$cluster"}', 0, cluster="eu-1") == 'up{cluster="eu-1"}'


def test_a_prometheus_url_with_credentials_is_refused() -> None:
    # gate settings are shown on the run's page and returned by the API
    with pytest.raises(ValidationError) as refused:
        gates_validate(
            {"prometheus": {"url": "http://user:secret@prom.example:9090", "query": "up", "max": 1}}
        )
    assert refused.value.message_dict == {
        "gates.prometheus.url": ["Credentials in the URL are not accepted."]
    }
