"""The native CEL engine and cel-python agree on every bundled expression, and what the
native engine cannot judge is judged by cel-python with its own messages."""

from __future__ import annotations

from typing import Any

import pytest

from policies import cel
from policies.library import library

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
PODS: list[dict[str, Any]] = [
    {  # meets every rule
        "metadata": {"name": "ok", "labels": {"app.kubernetes.io/name": "ok"}},
        "spec": {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/web:1.0",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "securityContext": RESTRICTED,
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "readinessProbe": {"exec": {"command": ["true"]}},
                }
            ],
        },
    },
    {  # breaks most of them
        "metadata": {
            "name": "bad",
            "annotations": {"container.apparmor.security.beta.kubernetes.io/x": "unconfined"},
        },
        "spec": {
            "hostNetwork": True,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "initContainers": [
                {"name": "init", "image": "busybox:latest", "securityContext": {"privileged": True}}
            ],
            "containers": [
                {
                    "name": "web",
                    "image": "web",
                    "ports": [{"containerPort": 80, "hostPort": 80}],
                    "securityContext": {
                        "runAsUser": 0,
                        "capabilities": {"add": ["NET_ADMIN"]},
                        "procMount": "Unmasked",
                    },
                }
            ],
        },
    },
]
EXPRESSIONS = sorted(
    {
        str(rule["expression"])
        for policy in library()
        for rule in policy["rules"]
        if rule.get("expression")
    }
)


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=range(len(EXPRESSIONS)))
def test_both_engines_give_the_same_verdict_on_bundled_expressions(expression: str) -> None:
    program = cel.compile_expression(expression)
    native = cel._native_program(expression)
    assert native is not None, "the native engine compiles every bundled expression"
    name = "cluster" if expression.startswith("cluster.") else "object"
    values = (
        [{"version": {"major": 1, "minor": m}} for m in (20, 31)] if name == "cluster" else PODS
    )
    for value in values:
        activation = cel.Activation(name, value)
        try:
            expected: Any = bool(program.evaluate(activation.python()))
        except Exception:
            expected = "error"
        try:
            found: Any = native.execute(activation.native())
        except Exception:
            found = "error"
        assert found == expected, value["metadata"]["name"] if name == "object" else value


def test_an_object_the_native_engine_cannot_judge_gets_cel_pythons_message() -> None:
    activation = cel.Activation("object", {"spec": {}})
    with pytest.raises(cel.CelEvaluationError, match="no such member"):
        cel.evaluate("object.spec.template.spec.containers.size() > 0", activation)
    assert cel.evaluate("has(object.spec.template) == false", activation) is True


def test_equal_cut_down_values_share_one_conversion_and_one_verdict() -> None:
    # given three Pods of one snapshot: two with the same containers, one different
    memo = cel.Memo(cel.Verdicts())

    def pod(name: str, image: str) -> cel.Activation:
        body = {"metadata": {"name": name}, "spec": {"containers": [{"image": image}]}}
        return cel.Activation("object", body, memo)

    a, b, c = (
        pod("a", "registry.example/x"),
        pod("b", "registry.example/x"),
        pod("c", "docker.io/x"),
    )
    images = "object.spec.containers.all(c, c.image.startsWith('registry.example/'))"
    # then each is judged on its own value
    assert [cel.evaluate(images, p) for p in (a, b, c)] == [True, True, False]
    # and the two equal cut-down values were converted and judged once
    shape = cel.reads(images, "object")
    assert a.native(shape) is b.native(shape)
    assert a.native(shape) is not c.native(shape)
    assert len(memo.verdicts) == 2
    # while a rule reading what differs tells them apart
    named = "object.metadata.name == 'a'"
    assert [cel.evaluate(named, p) for p in (a, b, c)] == [True, False, False]


def test_verdicts_are_shared_across_snapshots_by_cut_down_value() -> None:
    # given a Pod of one cluster judged, and the same workload's Pod in another cluster
    verdicts = cel.Verdicts()
    images = "object.spec.containers.all(c, c.image.startsWith('registry.example/'))"

    def pod(cluster: str, image: str) -> cel.Activation:
        body = {
            "metadata": {"name": f"web-{cluster}", "uid": cluster},
            "spec": {"containers": [{"image": image}]},
        }
        return cel.Activation("object", body, cel.Memo(verdicts))

    assert cel.evaluate(images, pod("a", "registry.example/web")) is True
    assert len(verdicts) == 1
    # when the other cluster's equal Pod is judged
    other = pod("b", "registry.example/web")
    assert cel.evaluate(images, other) is True
    # then the verdict was found, not computed: nothing was converted for it
    assert len(verdicts) == 1 and other._native == {}
    # while a different image, or an expression reading the name, is judged on its own
    assert cel.evaluate(images, pod("c", "docker.io/web")) is False
    assert cel.evaluate("object.metadata.name == 'web-b'", other) is True
    assert cel.evaluate("object.metadata.name == 'web-b'", pod("a", "x")) is False
    assert len(verdicts) == 4


def test_the_shared_verdicts_are_bounded() -> None:
    verdicts = cel.Verdicts(max_bytes=2000)
    memo = cel.Memo(verdicts)
    for i in range(100):
        body = {"spec": {"replicas": i}}
        assert cel.evaluate("object.spec.replicas < 50", cel.Activation("object", body, memo)) is (
            i < 50
        )
    assert 0 < len(verdicts) < 100
