"""The native engine judges a copy of the object cut down to what the expression can
read (policies/celpaths.py): the analysis finds the right paths, gives up on what it does
not understand, and the verdict on the cut-down copy is the verdict on the whole object
for every bundled and benchmark expression, on the simulator's objects, on edge cases
and on random expressions over random objects."""

from __future__ import annotations

import copy
import os
from typing import Any

import cel as native
import celpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.simulator import PROFILES, Variant, cluster_objects
from benchmarks.sweep import CLUSTER_EXPRESSIONS, FIXED_RULES, OBJECT_FAMILIES
from policies import cel, celpaths
from policies.library import library
from policies.objects import POD_CONTROLLERS, group_of, pod_view

_env = celpy.Environment()


def paths(source: str, root: str = "object") -> list[str] | None:
    shape = celpaths.reads(_env.compile(source), root)
    return None if shape is None else sorted(shape.paths())


# --- the analysis ---------------------------------------------------------------------

# Random expressions per property: 1500 in `make test`; `make test-unit` asks for fewer
# (KEELSON_PROPERTY_EXAMPLES) to answer in seconds.
EXAMPLES = int(os.environ.get("KEELSON_PROPERTY_EXAMPLES", "1500"))
READS: list[tuple[str, list[str] | None]] = [
    # a macro's variable stands for every element of its range
    ("object.spec.containers.all(c, c.image.startsWith('x'))", ["spec.containers[*].image"]),
    ("object.spec.containers.exists(c, c.name == 'a')", ["spec.containers[*].name"]),
    ("object.spec.containers.exists_one(c, c.name == 'a')", ["spec.containers[*].name"]),
    ("object.spec.containers.existsOne(c, c.name == 'a')", ["spec.containers[*].name"]),
    ("object.a.filter(c, c.x).all(d, d.y)", ["a[*].x", "a[*].y"]),
    ("object.a.map(c, c.x).size() > 0", ["a[*].x"]),
    ("object.a.map(c, c.x, c.y).size() > 0", ["a[*].x", "a[*].y"]),
    # nested macros, the outer variable read inside the inner one
    ("object.a.all(c, c.b.all(d, d.x && c.y))", ["a[*].b[*].x", "a[*].y"]),
    # iterating a map keeps its keys; the key used whole keeps the values too
    ("object.metadata.labels.all(k, k.startsWith('a'))", ["metadata.labels[*]"]),
    ("object.m.exists(k, true)", ["m[*]?"]),
    # has(): presence only
    ("has(object.spec.replicas)", ["spec.replicas?"]),
    (
        "object.spec.containers.all(c, has(c.resources.requests))",
        ["spec.containers[*].resources.requests?"],
    ),
    # `in`, comparisons, functions: the whole subtree
    (
        "has(object.metadata.labels) && 'team' in object.metadata.labels",
        ["metadata.labels"],
    ),
    ("object.spec.replicas >= 1", ["spec.replicas"]),
    ("object.spec.ports.all(p, p.port > 0)", ["spec.ports[*].port"]),
    ("string(object.spec) != ''", ["spec"]),
    # size(): the number of elements (or keys), not their content
    ("object.spec.containers.size() <= 5", ["spec.containers[*]?"]),
    ("size(object.spec.containers) <= 5", ["spec.containers[*]?"]),
    (
        "object.spec.containers.size() <= 5 && object.spec.containers.all(c, c.image != '')",
        ["spec.containers[*].image"],
    ),
    # constant indexes
    ("object.spec.containers[0].name == 'c0'", ["spec.containers[*].name"]),
    ("object.metadata.labels['team'] == 'a'", ["metadata.labels.team"]),
    ('object.metadata["labels"].team == "a"', ["metadata.labels.team"]),
    # a computed index reads the whole target (and what the index reads)
    ("object.m.all(k, object.m[k] == 'x')", ["m"]),
    ("object.a[object.i] == 1", ["a", "i"]),
    ("object.a['x\\n'] == 1", ["a"]),
    # list concatenation and conditionals: the result is made of the operands
    (
        "(object.a + (has(object.b) ? object.b : [])).all(c, c.x == 1)",
        ["a[*].x", "b[*].x"],
    ),
    ("(object.p ? object.a : object.b).x == 1", ["a.x", "b.x", "p"]),
    # the expression's own value is read whole
    ("object.spec", ["spec"]),
    ("[object.a, 1].size() == 2", ["a"]),
    # a macro variable shadows an outer name
    ("object.a.all(x, x.b) && object.c.all(x, x.d)", ["a[*].b", "c[*].d"]),
    # whole object: the root used bare, or anything not understood
    ("object == {}", None),
    ("object", None),
    ("[1].all(object, object > 0)", None),
    ("object.a.all(i, v, v > 0)", None),
    ("cel.bind(x, object.a, x.b)", None),
    ("object.a.sortBy(x, x.b).size() > 0", None),
    (".object.a == 1", None),
    ("google.protobuf.Struct{fields: {}} == object.a", None),
    ("object.a.all(c.d, true)", None),
    # another variable: nothing read from this one
    ("cluster.version.major > 1", []),
]


@pytest.mark.parametrize(("source", "expected"), READS, ids=[s for s, _ in READS])
def test_the_analysis_finds_what_an_expression_reads(
    source: str, expected: list[str] | None
) -> None:
    assert paths(source) == expected


def test_the_analysis_follows_the_variable_it_is_asked_about() -> None:
    source = "cluster.version.major > 1 || cluster.version.minor >= 31"
    assert paths(source, "cluster") == ["version.major", "version.minor"]


def test_shapes_reading_the_same_paths_are_one_key() -> None:
    one = cel.reads("object.spec.containers.all(c, c.image != '')", "object")
    two = cel.reads("object.spec.containers.exists(x, x.image == 'a')", "object")
    assert one == two and hash(one) == hash(two) and one is not two
    activation = cel.Activation("object", {"spec": {"containers": [{"image": "a"}]}})
    assert activation.native(one) is activation.native(two)


# --- the pruner -----------------------------------------------------------------------


def shape(source: str) -> celpaths.Shape:
    found = cel.reads(source, "object")
    assert found is not None
    return found


def test_pruning_keeps_every_element_in_order_and_only_the_paths_read() -> None:
    pod: dict[str, Any] = {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}] * 5},
                {"name": "b", "env": []},
            ]
        },
    }
    pruned = celpaths.prune(pod, shape("object.spec.containers.all(c, c.image == 'x')"))
    assert pruned == {"spec": {"containers": [{"image": "x"}, {}]}}
    assert pod["spec"]["containers"][0]["env"], "the original is untouched"


def test_pruning_keeps_presence_and_map_keys() -> None:
    value = {"m": {"a": {"deep": [1, 2]}, "b": 2}, "l": [1, 2, 3], "s": "abc"}
    assert celpaths.prune(value, shape("has(object.m)")) == {"m": {}}
    assert celpaths.prune(value, shape("object.m.exists(k, true)")) == {"m": {"a": {}, "b": 2}}
    assert celpaths.prune(value, shape("object.l.size() > 0")) == {"l": [1, 2, 3]}
    assert celpaths.prune(value, shape("object.s.size() > 0")) == {"s": "abc"}


def test_a_value_that_does_not_fit_the_shape_is_kept_whole() -> None:
    value = {"l": [{"x": 1, "y": 2}], "s": "abc", "m": {"x": 1}}
    # a field of a list, a field of a string: the engine fails on either as on the original
    assert celpaths.prune(value, shape("object.l.x == 1"))["l"] == [{"x": 1, "y": 2}]
    assert celpaths.prune(value, shape("object.s.x == 1"))["s"] == "abc"
    assert celpaths.prune(value, shape("object.nope.x == 1")) == {}


def test_a_map_both_iterated_and_selected_keeps_both() -> None:
    value = {"m": {"a": {"x": 1, "y": 2, "z": 3}, "b": {"x": 4, "y": 5, "z": 6}}}
    read = shape("object.m.exists(k, true) && object.m.a.y == 2")
    assert celpaths.prune(value, read) == {"m": {"a": {"y": 2}, "b": {}}}
    read = shape("object.m.exists(k, object.m.b.z == 6) && object.m.all(k, has(k.x))")
    assert celpaths.prune(value, read) == {"m": {"a": {"x": 1}, "b": {"x": 4, "z": 6}}}


# --- pruned vs. whole: the same verdict -----------------------------------------------

BUNDLED = sorted(
    {
        str(rule["expression"])
        for policy in library()
        for rule in policy["rules"]
        if rule.get("expression")
    }
)
BENCHMARK = [str(rule["expression"]) for rule in FIXED_RULES + OBJECT_FAMILIES]
EXTRA = [source for source, _ in READS if not source.startswith("cluster")]
OBJECT_EXPRESSIONS = sorted(
    {e for e in BUNDLED + BENCHMARK + EXTRA if not e.startswith("cluster.")}
)
CLUSTER = sorted({e for e in BUNDLED if e.startswith("cluster.")} | set(CLUSTER_EXPRESSIONS))

EDGE_OBJECTS: list[dict[str, Any]] = [
    {},
    {"metadata": {}},
    {"metadata": {"labels": {}, "annotations": {}}, "spec": {}},
    {"metadata": {"labels": {"team": "a"}}, "spec": {"containers": []}},
    {"metadata": {"labels": None}, "spec": {"containers": None}},
    {"spec": {"containers": [{}], "initContainers": [], "ephemeralContainers": [{}]}},
    {"spec": {"containers": [{"image": 3, "securityContext": []}]}},
    {"spec": {"containers": {"a": {"image": "x"}}}},
    {"spec": {"containers": "web"}},
    {"spec": {"containers": [{"name": "c0", "image": "registry.example/a:1", "ports": []}]}},
    {
        "spec": {
            "containers": [
                {
                    "name": "c0",
                    "image": "registry.example/a@sha256:00ff",
                    "ports": [{"containerPort": 80, "hostPort": 0}, {"hostPort": 8080}],
                    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": 1, "memory": 2}},
                    "securityContext": {
                        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                        "seLinuxOptions": {"type": "container_t", "user": "u"},
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                    },
                }
            ]
            * 3,
            "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced"}], "runAsUser": 0},
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
            "hostNetwork": False,
            "replicas": 0,
            "type": "LoadBalancer",
            "ports": [{"port": 0}, {"port": 70000}],
            "policyTypes": [],
            "successfulJobsHistoryLimit": 4,
            "ttlSecondsAfterFinished": None,
        },
        "metadata": {
            "annotations": {
                "container.apparmor.security.beta.kubernetes.io/x": "localhost/p",
                "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            },
            "labels": {"app.kubernetes.io/name": "x", "team": "t"},
        },
        "m": {"a": {"x": 1, "y": 2}, "b": "x"},
        "a": [{"b": [{"x": True}], "y": False, "x": 1}],
        "c": [{"d": True}],
        "i": 0,
        "p": True,
    },
    {"spec": {"template": {"spec": {"containers": [{"livenessProbe": {}}]}}}},
]


def simulator_objects() -> list[dict[str, Any]]:
    """Every object the simulator serves for its profiles and a few variants, and the
    Pod views of its controllers, once each."""
    found: dict[str, dict[str, Any]] = {}
    variants = [
        Variant(),
        Variant(legacy=True, privileged=True, latest=True, no_limits=True),
        Variant(load_balancer=True, cronjob_history=True, no_network_policy=True),
    ]
    for profile in range(PROFILES):
        for variant in variants:
            for path, answer in cluster_objects(profile, profile % 2 == 0, variant).items():
                if not isinstance(answer, dict) or "items" not in answer:
                    continue
                parts = path.strip("/").split("/")
                group = "" if parts[0] == "api" else group_of("/".join(parts[1:3]))
                for item in answer["items"]:
                    found.setdefault(repr(item), item)
                    for (g, kind), _ in POD_CONTROLLERS.items():
                        if g == group and item.get("kind") == kind:
                            view = pod_view(g, kind, item)
                            if view is not None:
                                found.setdefault(repr(view), view)
    return list(found.values())


SIMULATED = simulator_objects()
CLUSTERS: list[dict[str, Any]] = [
    {},
    {"version": {}},
    {"labels": None, "version": {"major": 1}},
    {"labels": {}, "provider": "aws", "version": {"major": 1, "minor": 20}},
    {"labels": {"env": "prod"}, "provider": "edge", "version": {"major": 2, "minor": 0}},
    {
        "name": "c",
        "nodeCount": 0,
        "labels": {"env": "x"},
        "provider": "nope",
        "version": {"major": 1, "minor": 31},
        "allocatable": {"cpuMillis": -1, "memoryBytes": 5},
    },
]


def outcome(program: Any, name: str, value: Any) -> tuple[str, Any]:
    """The native engine's answer over a fresh conversion of `value`: ("error", None) or
    (type, value); lists and maps in a canonical order (see `same_outcome`)."""
    context = native.Context()
    context.add_variable(name, value)
    try:
        result = program.execute(context)
    except Exception:
        return ("error", None)
    return (type(result).__name__, canonical(result))


def canonical(value: Any) -> Any:
    """Lists and maps in a canonical order, however deep."""
    if isinstance(value, dict):
        return sorted(repr((canonical(k), canonical(v))) for k, v in value.items())
    if isinstance(value, list):
        return sorted(repr(canonical(item)) for item in value)
    return value


def same_outcome(program: Any, name: str, value: Any, pruned: Any) -> bool:
    """The engine answers over the pruned value what it answers over the whole one.

    The native engine keeps a map in a hash map whose order changes with every
    conversion, and a macro stops at the first key that fails: over a map where one key
    fails and another decides, the whole value itself gives either answer. So when the
    first answers differ, every answer the pruned value gives must be one the whole
    value gives too."""
    if outcome(program, name, pruned) == outcome(program, name, value):
        return True
    whole = {str(outcome(program, name, value)) for _ in range(60)}
    return all(str(outcome(program, name, pruned)) in whole for _ in range(10))


def test_the_simulator_gives_objects_of_every_kind() -> None:
    kinds = {str(o.get("kind")) for o in SIMULATED}
    assert {"Deployment", "Service", "NetworkPolicy", "CronJob"} <= kinds
    assert len(SIMULATED) > 50


@pytest.mark.parametrize("source", OBJECT_EXPRESSIONS, ids=range(len(OBJECT_EXPRESSIONS)))
def test_pruned_and_whole_objects_give_the_same_verdict(source: str) -> None:
    program = cel._native_program(source)
    if program is None:  # cel-python judges it, on the whole object
        return
    read = cel.reads(source, "object")
    for value in SIMULATED + EDGE_OBJECTS:
        before = copy.deepcopy(value)
        pruned = celpaths.prune(value, read)
        assert same_outcome(program, "object", value, pruned), (value, read)
        assert value == before, "pruning leaves the object alone"


@pytest.mark.parametrize("source", CLUSTER, ids=range(len(CLUSTER)))
def test_pruned_and_whole_clusters_give_the_same_verdict(source: str) -> None:
    program = cel._native_program(source)
    assert program is not None
    read = cel.reads(source, "cluster")
    assert read is not None, "cluster expressions are pruned too"
    for value in CLUSTERS:
        pruned = celpaths.prune(value, read)
        assert same_outcome(program, "cluster", value, pruned), (value, read)


def judged(source: str, value: Any) -> Any:
    """What cel.evaluate answers: a verdict or the error message."""
    try:
        return cel.evaluate(source, cel.Activation("object", value))
    except cel.CelEvaluationError as error:
        return ("error", str(error))


@pytest.mark.parametrize("value", EDGE_OBJECTS, ids=range(len(EDGE_OBJECTS)))
def test_evaluate_answers_and_fails_as_on_the_whole_object(
    value: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = {source: judged(source, value) for source in OBJECT_EXPRESSIONS}
    monkeypatch.setattr(cel, "reads", lambda source, name: None)  # as before pruning
    expected = {source: judged(source, value) for source in OBJECT_EXPRESSIONS}
    assert found == expected


# --- random expressions over random objects --------------------------------------------

KEYS = ("a", "b", "c")
SCALARS = (
    st.one_of(
        st.integers(-2, 2), st.sampled_from(["", "a", "b", "registry.example/x"]), st.booleans()
    )
    | st.none()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), VALUES)


@st.composite
def selections(draw: Any, names: tuple[str, ...]) -> str:
    """A value: the root or a macro variable, then member selections and indexes."""
    text = draw(st.sampled_from(("object", *names)))
    for _ in range(draw(st.integers(0, 3))):
        step = draw(st.sampled_from(["field", "field", "int", "key"]))
        key = draw(st.sampled_from(KEYS))
        text += {"field": f".{key}", "int": f"[{draw(st.integers(0, 1))}]", "key": f"['{key}']"}[
            step
        ]
    return text


@st.composite
def expressions(draw: Any, depth: int = 2, names: tuple[str, ...] = ()) -> str:
    value = draw(selections(names))
    options = ["value", "has", "size", "compare", "in", "concat", "ternary", "literal"]
    if depth > 0:
        options += ["macro", "macro", "logic", "not", "index"]
    kind = draw(st.sampled_from(options))
    if kind == "value":
        return value
    if kind == "has":
        return f"has({value}.{draw(st.sampled_from(KEYS))})"
    if kind == "size":
        return draw(st.sampled_from([f"size({value})", f"{value}.size()"]))
    if kind == "literal":
        return draw(st.sampled_from(["1", "'a'", "[]", "{}", "true", "null", "[1, 'a']"]))
    if kind == "compare":
        other = draw(st.sampled_from(["1", "'a'", "true", "null", "[]", draw(selections(names))]))
        return f"{value} {draw(st.sampled_from(['==', '!=', '<', '>=']))} {other}"
    if kind == "in":
        needle = draw(st.sampled_from(["1", "true", repr(draw(st.sampled_from(KEYS)))]))
        return f"{needle} in {value}"
    if kind == "concat":
        return f"({value} + {draw(selections(names))})"
    if kind == "ternary":
        condition = draw(selections(names))
        return f"({condition} ? {value} : {draw(selections(names))})"
    inner = draw(expressions(depth - 1, names))
    if kind == "logic":
        operator, other = draw(st.sampled_from(["&&", "||"])), draw(expressions(depth - 1, names))
        return f"({inner} {operator} {other})"
    if kind == "not":
        return f"!({inner})"
    if kind == "index":
        return f"{value}[{inner}]"
    macro = draw(st.sampled_from(["all", "exists", "exists_one", "filter", "map"]))
    name = f"v{depth}"
    body = draw(expressions(depth - 1, (*names, name)))
    return f"{value}.{macro}({name}, {body})"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expressions(), value=OBJECTS)
def test_random_expressions_give_the_same_outcome_pruned(source: str, value: Any) -> None:
    try:
        program = native.compile(source)
        tree = _env.compile(source)
    except Exception:
        return
    read = celpaths.reads(tree, "object")
    assert same_outcome(program, "object", value, celpaths.prune(value, read)), read


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expressions(), value=OBJECTS)
def test_the_compiled_pruner_cuts_as_the_plain_one_does(source: str, value: Any) -> None:
    try:
        tree = _env.compile(source)
    except Exception:
        return
    read = celpaths.reads(tree, "object")
    for item in (value, *value.values()):
        assert celpaths.prune(item, read) == celpaths.prune_reference(item, read)
    # and, like it, shares kept leaves instead of copying them
    if read is not None and not read.whole:
        for name, sub in read.fields.items():
            if sub.whole and name in value:
                assert celpaths.prune(value, read)[name] is value[name]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=expressions(), second=expressions(), value=OBJECTS)
def test_what_a_shape_keeps_is_a_function_of_what_a_union_with_it_keeps(
    first: str, second: str, value: Any
) -> None:
    """Equal values under a union are equal under each of its shapes: the ground for
    judging every rule of a subject list by one cut (engine sharing)."""
    try:
        shapes = [celpaths.reads(_env.compile(source), "object") for source in (first, second)]
    except Exception:
        return
    if any(s is None for s in shapes):
        return
    both = celpaths.union([s for s in shapes if s is not None])
    for own in shapes:
        assert celpaths.prune(celpaths.prune(value, both), own) == celpaths.prune(value, own)
