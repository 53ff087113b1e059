"""Issue 21 #6: user CEL has size, nesting and cost limits on save, a cost limit per
evaluation, and a budget per web request."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from accounts.choices import Role
from policies import cel, celcost
from policies.engine import Snapshot, judge
from policies.models import Policy, PolicyRule
from tests.factories import add_member, make_team, make_user

TWENTY = "[" + ",".join(str(i) for i in range(20)) + "]"
# 20^4 = 160,000 bodies: seconds in the native engine's fallback and minutes in cel-python.
NESTED_LOOPS = f"{TWENTY}.all(a, {TWENTY}.all(b, {TWENTY}.all(c, {TWENTY}.all(d, a+b+c+d >= 0))))"
DEEP = "(" * 1000 + "true" + ")" * 1000
# Cheap on an ordinary ConfigMap (100 keys: ~50,000 units), quadratic in its keys.
PAIRS = "object.data.all(k, object.data.all(j, k == j || object.data[k] != object.data[j]))"


def _configmap(keys: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "web", "uid": "uid-big"},
        "data": {f"k{i}": f"v{i}" for i in range(keys)},
    }


def _rule(expression: str) -> dict[str, Any]:
    return {
        "name": "r",
        "kind": "object",
        "match": {"kinds": ["ConfigMap"]},
        "expression": expression,
    }


@pytest.fixture
def operator() -> APIClient:
    team = make_team(name="payments")
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("expression", "says"),
    [
        (DEEP, "nests brackets more than 24 levels deep"),
        ("-" * 1000 + "1 > 0", "nests more than 250 levels deep"),
        (NESTED_LOOPS, "exceeds the limit of 1,000,000"),
        ("true && " * 600 + "true", "the limit is 4096"),
    ],
    ids=["1000 brackets deep", "1000 operators deep", "4 nested loops of 20", "4,804 characters"],
)
def test_expressions_past_a_limit_are_refused_on_save(
    operator: APIClient, expression: str, says: str
) -> None:
    response = operator.post(
        "/api/v1/policies/",
        {"name": "costly", "team": "payments", "rules": [_rule(expression)]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert says in response.json()["error"]["message"]
    assert not Policy.objects.exists()
    # and refusing it is quick (the limits are checked before the costly parts)
    cel.compile_expression.cache_clear()
    cel.validate_expression("1 > 0")  # the parser's own warm-up is not the expression's
    started = time.monotonic()
    with pytest.raises(ValidationError):
        cel.validate_expression(expression)
    # A coarse bound (the machine may be busy): parsing such an expression took seconds.
    assert time.monotonic() - started < 3


def test_the_bundled_library_is_within_the_limits() -> None:
    from policies.library import library

    for entry in library():
        for rule in entry["rules"]:
            if rule.get("expression"):
                cel.validate_expression(rule["expression"])  # raises past a limit


def _judge(expression: str, keys: int) -> Any:
    rule = PolicyRule(name="pairs", kind="object", match={"kinds": ["ConfigMap"]})
    rule.expression = expression
    snapshot = Snapshot(objects={("", "ConfigMap"): [_configmap(keys)]}, namespaced={}, cluster={})
    return judge([rule], snapshot)


def test_an_expression_too_costly_for_one_object_fails_on_it_without_running() -> None:
    # given a rule accepted on save (quadratic, fine for 100 keys)
    cel.validate_expression(PAIRS)
    assert _judge(PAIRS, 50).errors == []

    # when it meets a ConfigMap of 4,000 keys (16 million pairs)
    started = time.monotonic()
    judgement = _judge(PAIRS, 4000)

    # then that object is an error naming the limit, found at once (a coarse bound: running
    # 16 million pairs takes minutes)
    assert time.monotonic() - started < 3
    [error] = judgement.errors
    assert "exceeds the limit of 1,000,000" in error["message"]
    assert judgement.violations == []


def test_a_request_budget_stops_cel_work_once_spent() -> None:
    # given a budget for three and a half evaluations of the rule on a 100-key ConfigMap
    # (estimated with the next power of two, 128 items per list)
    units = cel.cost(PAIRS, celcost.size_bucket(101))
    assert 0 < units <= celcost.PER_CALL_LIMIT
    rule = PolicyRule(name="pairs", kind="object", match={"kinds": ["ConfigMap"]})
    rule.expression = PAIRS
    objects = []
    for i in range(10):
        body = _configmap(100)
        body["metadata"] = {"name": f"cm{i}", "namespace": "web", "uid": f"uid-{i}"}
        body["data"]["which"] = str(i)  # no two alike: no shared verdicts
        objects.append(body)
    snapshot = Snapshot(objects={("", "ConfigMap"): objects}, namespaced={}, cluster={})

    # when judged inside a web request's budget of three evaluations
    with cel.budget(units * 3 + units // 2):
        judgement = judge([rule], snapshot)

    # then three objects were judged and the other seven are errors saying why
    assert judgement.checked == 10
    assert len(judgement.errors) == 7
    assert all("CEL cost budget is spent" in e["message"] for e in judgement.errors)
    # outside a request (a worker's sweep) there is no such budget
    assert _judge(PAIRS, 101).errors == []
