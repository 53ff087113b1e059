"""The fleet simulator (benchmarks/simulator/) serves metrics.k8s.io as the cost
collector reads it: listed in discovery, pod usage by profile."""

from __future__ import annotations

from benchmarks.simulator import Variant, cluster_objects


def test_profile_1_pods_use_three_quarters_of_their_cpu_and_80_percent_of_memory() -> None:
    objects = cluster_objects(1, False, Variant.of(1))
    assert "metrics.k8s.io" in [group["name"] for group in objects["/apis"]["groups"]]
    usage = {
        item["metadata"]["name"]: item["containers"][0]["usage"]
        for item in objects["/apis/metrics.k8s.io/v1beta1/pods"]["items"]
    }
    # pod-0 requests 100m and 256Mi: 75 % of 100m = 75m = 75,000,000n; 80 % of 256 MiB
    # = 268,435,456 x 0.8 = 214,748,364.8 -> 214748364 bytes
    assert usage["pod-0"] == {"cpu": "75000000n", "memory": "214748364"}
