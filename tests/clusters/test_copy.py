"""COPY's text format: every awkward value comes back as it went in."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from clusters.models import Cluster
from core.db.copy import copy_rows, copy_value
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation import EVALUATION_COLUMNS
from tests.factories import make_team

pytestmark = pytest.mark.django_db


def test_values_are_formatted_for_copy() -> None:
    assert copy_value(None) == "\\N"
    assert copy_value(True) == "t"
    assert copy_value(False) == "f"
    assert copy_value(7) == "7"
    assert copy_value("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_value({"k": "v"}) == '{"k":"v"}'
    assert copy_value({"n": 2**70}) == f'{{"n": {2**70}}}'  # past orjson: the json module
    assert copy_value([{"t": "a\tb"}]) == '[{"t":"a\\\\tb"}]'  # JSON's escape, escaped


def test_awkward_text_and_json_round_trip() -> None:
    team = make_team()
    cluster = Cluster.objects.create(name="copy-1", team=team)
    policy = Policy.objects.create(team=team, name="copy-policy")
    nasty = "tab\there\nnewline \\backslash\r \\N 'quote' \"dq\" \x00nul ünï"
    row = PolicyEvaluation(
        policy=policy,
        cluster=cluster,
        run_id=uuid.uuid4(),
        status="noncompliant",
        message=nasty,
        violations=[{"name": nasty, "nested": {"list": [1, None, True, 2**70]}}],
        errors=[],
        violations_total=1,
        errors_total=0,
        objects_checked=3,
        policy_generation=2,
        inventory_stamp="",
        forced=False,
        evaluated_at=timezone.now(),
    )
    values = [getattr(row, column) for column in EVALUATION_COLUMNS]
    assert copy_rows(PolicyEvaluation, EVALUATION_COLUMNS, [values]) == 1
    stored = PolicyEvaluation.objects.get(cluster=cluster)
    clean = nasty.replace("\x00", "")
    assert stored.message == clean
    assert stored.violations == [{"name": clean, "nested": {"list": [1, None, True, 2**70]}}]
    assert stored.run_id == row.run_id
    assert stored.evaluated_at == row.evaluated_at
    assert (stored.forced, stored.objects_checked, stored.policy_generation) == (False, 3, 2)
