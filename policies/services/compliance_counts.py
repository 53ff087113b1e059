"""Compliance counts kept as they change, so reading them costs a few hundred rows
whatever the fleet's size.

A trigger on PolicyEvaluation (migration 0012) appends a ComplianceDelta row each time a
(policy, cluster) pair enters or leaves a status. Reading sums them: all of them is the
current count per status; all but those after a day is the count as of that day's end.
`compact` folds the appended rows into one per (policy, day, status), and days older than
the trend shows into one row per (policy, status), so the table stays small."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from django.db import connection, transaction

from core.db.locks import advisory_lock

KEPT_DAYS = 62
"""Days kept one by one (the overview's trend shows 30); older ones fold into BEFORE."""
BEFORE = date(2000, 1, 1)
"""The day that stands for every day older than KEPT_DAYS."""
COMPACT_LOCK = (0x4B43, 12)
"""Advisory lock: one compaction at a time (others skip; the next one catches up)."""

Counts = dict[int, dict[str, int]]


def current_counts(policy_ids: Sequence[int]) -> Counts:
    """Pairs per status for each policy, from the newest outcome of each pair."""
    counts: Counts = defaultdict(dict)
    if not policy_ids:
        return counts
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT policy_id, status, sum(delta) FROM policies_compliancedelta"
            " WHERE policy_id = ANY(%s) GROUP BY policy_id, status",
            [list(policy_ids)],
        )
        for policy_id, status, total in cursor.fetchall():
            if total:
                counts[policy_id][status] = int(total)
    return counts


def daily_counts(
    policy_ids: Sequence[int], *, first: date, last: date
) -> dict[date, dict[str, int]]:
    """Pairs per status summed over `policy_ids`, as of the end of each day from `first`
    to `last` (UTC days): the current counts less what changed after each day."""
    if not policy_ids:
        return {}
    totals: dict[str, int] = defaultdict(int)
    after: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT day > %s, day, status, sum(delta) FROM policies_compliancedelta"
            " WHERE policy_id = ANY(%s) GROUP BY 1, 2, 3",
            [first, list(policy_ids)],
        )
        for recent, day, status, total in cursor.fetchall():
            totals[status] += int(total)
            if recent:
                after[day][status] += int(total)
    # Walk back from today: the counts at the end of day d are those at the end of d+1
    # less what day d+1 changed.
    counts = dict(totals)
    for day in sorted((d for d in after if d > last), reverse=True):
        for status, total in after[day].items():
            counts[status] = counts.get(status, 0) - total
    result: dict[date, dict[str, int]] = {}
    day = last
    while day >= first:
        result[day] = dict(counts)
        for status, total in after.get(day, {}).items():
            counts[status] = counts.get(status, 0) - total
        day -= timedelta(days=1)
    return dict(sorted(result.items()))


def compact(*, now: datetime) -> int:
    """Fold the appended deltas (see the module's docstring) and drop those of deleted
    policies; returns how many rows were folded. Skips when another compaction runs."""
    cutoff = now.date() - timedelta(days=KEPT_DAYS)
    with advisory_lock(COMPACT_LOCK) as held:
        if not held:
            return 0
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                WITH moved AS (
                    DELETE FROM policies_compliancedelta RETURNING policy_id, day, status, delta
                ), kept AS (
                    SELECT policy_id, CASE WHEN day < %s THEN %s ELSE day END AS day,
                           status, sum(delta) AS delta
                    FROM moved
                    WHERE policy_id IN (SELECT id FROM policies_policy)
                    GROUP BY 1, 2, 3
                    HAVING sum(delta) <> 0
                ), inserted AS (
                    INSERT INTO policies_compliancedelta (policy_id, day, status, delta)
                    SELECT policy_id, day, status, delta FROM kept
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM inserted)
                """,
                [cutoff, BEFORE],
            )
            row = cursor.fetchone()
    moved, kept = (int(row[0]), int(row[1])) if row else (0, 0)
    return moved - kept
