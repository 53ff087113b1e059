"""The compliance counts the evaluation trigger keeps (migration 0012,
`policies.services.compliance_counts`): current counts and each day's counts as of its
end, worked out by hand from the outcomes each test stores, whatever order they arrive in,
through deregistration, deletion and compaction."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from policies.models import ComplianceDelta, ComplianceState, Policy, PolicyEvaluation
from policies.services import compliance_counts
from policies.services.compliance_counts import current_counts, daily_counts
from tests.factories import make_cluster, make_evaluation, make_team

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def day(n: int) -> date:
    """`n` days before TODAY."""
    return TODAY - timedelta(days=n)


def at(n: int, hour: int = 12) -> datetime:
    return NOW.replace(hour=hour) - timedelta(days=n)


def row(policy: Policy, cluster: Any, status: str, when: datetime) -> PolicyEvaluation:
    return PolicyEvaluation(
        policy=policy,
        cluster=cluster,
        cluster_name=cluster.name,
        run_id=uuid.uuid4(),
        status=status,
        policy_generation=1,
        evaluated_at=when,
    )


def week(policy: Policy) -> dict[date, dict[str, int]]:
    return daily_counts([policy.pk], first=day(6), last=TODAY)


@pytest.fixture
def policy() -> Policy:
    return Policy.objects.create(team=make_team(), name="counts")


@pytest.mark.django_db
def test_counts_follow_each_pairs_newest_outcome(policy: Policy) -> None:
    a, b, c = (make_cluster(team=policy.team) for _ in range(3))
    make_evaluation(policy=policy, cluster=a, status="noncompliant", at=at(4))
    make_evaluation(policy=policy, cluster=b, status="compliant", at=at(4))
    make_evaluation(policy=policy, cluster=a, status="compliant", at=at(2))
    make_evaluation(policy=policy, cluster=c, status="error", at=at(1))
    # a forced evaluation finding the same outcome again changes no count
    make_evaluation(policy=policy, cluster=b, status="compliant", at=at(1), forced=True)
    assert current_counts([policy.pk]) == {policy.pk: {"compliant": 2, "error": 1}}
    assert ComplianceState.objects.filter(policy=policy).count() == 3
    # by hand: days 6 and 5 nothing; 4 and 3: a noncompliant, b compliant; 2: both
    # compliant; 1 and 0: both compliant and c in error
    assert _nonzero(week(policy)) == {
        day(4): {"noncompliant": 1, "compliant": 1},
        day(3): {"noncompliant": 1, "compliant": 1},
        day(2): {"compliant": 2},
        day(1): {"compliant": 2, "error": 1},
        day(0): {"compliant": 2, "error": 1},
    }


def _history(policy: Policy, cluster: Any) -> list[PolicyEvaluation]:
    """Outcomes of one pair: noncompliant 5 days ago, compliant 3 days ago, error 1 day ago."""
    return [
        row(policy, cluster, "noncompliant", at(5)),
        row(policy, cluster, "compliant", at(3)),
        row(policy, cluster, "error", at(1)),
    ]


EXPECTED_WEEK = {
    # by hand from _history: noncompliant on days 5 and 4, compliant on 3 and 2, error after
    day(5): {"noncompliant": 1},
    day(4): {"noncompliant": 1},
    day(3): {"compliant": 1},
    day(2): {"compliant": 1},
    day(1): {"error": 1},
    day(0): {"error": 1},
}


def _nonzero(counts: dict[date, dict[str, int]]) -> dict[date, dict[str, int]]:
    kept = {d: {s: n for s, n in c.items() if n} for d, c in counts.items()}
    return {d: c for d, c in kept.items() if c}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (0, 2, 1), (1, 0, 2)],
)
def test_history_loaded_in_any_order_counts_the_same(
    policy: Policy, order: tuple[int, ...]
) -> None:
    cluster = make_cluster(team=policy.team)
    rows = _history(policy, cluster)
    # one statement (as COPY and bulk inserts do) and one row per statement
    PolicyEvaluation.objects.bulk_create([rows[i] for i in order])
    assert _nonzero(week(policy)) == EXPECTED_WEEK
    other = make_cluster(team=policy.team)
    for i in order:
        _history(policy, other)[i].save()
    assert _nonzero(week(policy)) == {
        d: {s: 2 * n for s, n in c.items()} for d, c in EXPECTED_WEEK.items()
    }
    assert current_counts([policy.pk]) == {policy.pk: {"error": 2}}


@pytest.mark.django_db
def test_a_deregistered_cluster_counts_until_the_day_it_left(policy: Policy) -> None:
    staying, leaving = make_cluster(team=policy.team), make_cluster(team=policy.team)
    make_evaluation(policy=policy, cluster=staying, status="compliant", at=at(3))
    make_evaluation(policy=policy, cluster=leaving, status="noncompliant", at=at(3))
    make_evaluation(policy=policy, cluster=leaving, status="noncompliant", at=at(2), forced=True)
    leaving.delete()  # its outcomes keep the cluster's name, their cluster becomes null
    assert PolicyEvaluation.objects.filter(cluster=None, policy=policy).count() == 2
    assert current_counts([policy.pk]) == {policy.pk: {"compliant": 1}}
    today = timezone.now().date()
    counts = _nonzero(daily_counts([policy.pk], first=today - timedelta(days=4), last=today))
    # the past keeps the cluster that was there; from today on it is gone
    assert counts[today - timedelta(days=3)] == {"compliant": 1, "noncompliant": 1}
    assert counts[today - timedelta(days=1)] == {"compliant": 1, "noncompliant": 1}
    assert counts[today] == {"compliant": 1}


@pytest.mark.django_db
def test_deleted_outcomes_and_policies_leave_no_count(policy: Policy) -> None:
    other = Policy.objects.create(team=policy.team, name="other")
    cluster = make_cluster(team=policy.team)
    make_evaluation(policy=policy, cluster=cluster, status="noncompliant", at=at(2))
    newest = make_evaluation(policy=policy, cluster=cluster, status="compliant", at=at(1))
    make_evaluation(policy=other, cluster=cluster, status="compliant", at=at(1))
    newest.delete()  # the pair's current outcome goes: it stops counting
    assert current_counts([policy.pk, other.pk]) == {other.pk: {"compliant": 1}}
    policy.delete()
    assert current_counts([other.pk]) == {other.pk: {"compliant": 1}}
    compliance_counts.compact(now=timezone.now())
    assert set(ComplianceDelta.objects.values_list("policy_id", flat=True)) == {other.pk}


@pytest.mark.django_db
def test_compaction_keeps_every_count_and_folds_old_days(policy: Policy) -> None:
    clusters = [make_cluster(team=policy.team) for _ in range(4)]
    now = timezone.now()
    for i, cluster in enumerate(clusters):
        make_evaluation(
            policy=policy, cluster=cluster, status="noncompliant", at=now - timedelta(days=200 + i)
        )
        make_evaluation(
            policy=policy, cluster=cluster, status="compliant", at=now - timedelta(days=100 + i)
        )
        if i % 2:
            make_evaluation(
                policy=policy, cluster=cluster, status="noncompliant", at=now - timedelta(days=i)
            )
    today = now.date()
    before = daily_counts([policy.pk], first=today - timedelta(days=30), last=today)
    rows_before = ComplianceDelta.objects.count()
    folded = compliance_counts.compact(now=now)
    assert folded > 0 and ComplianceDelta.objects.count() == rows_before - folded
    assert daily_counts([policy.pk], first=today - timedelta(days=30), last=today) == before
    assert current_counts([policy.pk]) == {policy.pk: {"compliant": 2, "noncompliant": 2}}
    # every day older than the kept window is one row per status
    old = ComplianceDelta.objects.filter(
        day__lt=today - timedelta(days=compliance_counts.KEPT_DAYS)
    )
    assert set(old.values_list("day", flat=True)) == {compliance_counts.BEFORE}
    # by hand: four pairs entered noncompliant and left it for compliant before the window
    # (net 0: no row), and four entered compliant (+4)
    assert list(old.values_list("status", "delta")) == [("compliant", 4)]
    # a second compaction has nothing left to fold
    assert compliance_counts.compact(now=now) == 0


@pytest.mark.django_db
def test_backfill_builds_what_the_trigger_would_have(policy: Policy) -> None:
    from importlib import import_module

    backfill = import_module("policies.migrations.0012_compliance_counts").BACKFILL
    cluster = make_cluster(team=policy.team)
    PolicyEvaluation.objects.bulk_create([_history(policy, cluster)[i] for i in (2, 0, 1)])
    ComplianceState.objects.all().delete()
    ComplianceDelta.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(backfill)
    assert _nonzero(week(policy)) == EXPECTED_WEEK
    assert list(ComplianceState.objects.values_list("status", flat=True)) == ["error"]


@pytest.mark.django_db
def test_one_statement_mixing_new_outcomes_and_a_late_one(policy: Policy) -> None:
    a, b = make_cluster(team=policy.team), make_cluster(team=policy.team)
    PolicyEvaluation.objects.bulk_create(
        [
            row(policy, a, "compliant", at(4)),
            row(policy, b, "noncompliant", at(5)),
            row(policy, b, "compliant", at(1)),
        ]
    )
    # then one statement: two newer outcomes of a, and one of b dated between its two
    PolicyEvaluation.objects.bulk_create(
        [
            row(policy, a, "error", at(1)),
            row(policy, b, "error", at(3)),
            row(policy, a, "noncompliant", at(2)),
        ]
    )
    # by hand: a compliant on days 4-3, noncompliant on 2, error from 1; b noncompliant on
    # days 5-4, error on 3-2, compliant from 1
    assert _nonzero(week(policy)) == {
        day(5): {"noncompliant": 1},
        day(4): {"compliant": 1, "noncompliant": 1},
        day(3): {"compliant": 1, "error": 1},
        day(2): {"noncompliant": 1, "error": 1},
        day(1): {"error": 1, "compliant": 1},
        day(0): {"error": 1, "compliant": 1},
    }
    assert current_counts([policy.pk]) == {policy.pk: {"error": 1, "compliant": 1}}
