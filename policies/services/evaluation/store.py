"""Storing outcomes (full history): a new row when the outcome changed, else the newest
stored row's `checked_at` and inventory stamp move forward."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from django.db import connection, transaction

from clusters.models import ClusterInventory
from core.db.copy import copy_lines, copy_text, copy_value
from policies.models import PolicyEvaluation
from policies.services.evaluation.outcomes import EVALUATION_COLUMNS, Outcome


class Last(NamedTuple):
    """The newest stored result of a (policy, cluster) pair, without its lists (a tuple: a
    batch reads one per pair, and a frozen dataclass cost more to build than the query)."""

    id: int
    generation: int
    stamp: str
    digest: str
    evaluated_at: Any
    run_id: uuid.UUID
    forced: bool


def last_results(cluster_ids: list[int], policy_ids: list[int]) -> dict[tuple[int, int], Last]:
    """The newest result of each (policy, cluster) pair, in one query (the
    (policy, cluster, -evaluated_at) index serves it)."""
    rows = (
        PolicyEvaluation.objects.filter(cluster_id__in=cluster_ids, policy_id__in=policy_ids)
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
        .values_list(
            "policy_id",
            "cluster_id",
            "id",
            "policy_generation",
            "inventory_stamp",
            "digest",
            "evaluated_at",
            "run_id",
            "forced",
        )
    )
    return {(row[0], row[1]): Last(*row[2:]) for row in rows}


def inventory_stamps(cluster_ids: list[int]) -> dict[int, str]:
    """Each cluster's inventory stamp: the time of its last inventory collection (a new
    collection may have seen anything change, so it re-opens every policy there)."""
    rows = ClusterInventory.objects.filter(cluster_id__in=cluster_ids).values_list(
        "cluster_id", "collected_at"
    )
    return {pk: collected.isoformat() for pk, collected in rows if collected}


def store(rows: list[Outcome], copy: bool, last: dict[tuple[int, int], Last]) -> None:
    """Insert the rows whose outcome is new; for an outcome the newest stored row already
    holds, move that row's `checked_at` and inventory stamp instead (the row in `rows`
    then stands for the stored one). `last` is empty for forced evaluations."""
    confirmed: list[tuple[int, str, Any]] = []
    new: list[Outcome] = []
    for row in rows:
        found = last.get((row.policy_id, row.cluster_id))
        if found is not None and found.digest == row.digest:
            confirmed.append((found.id, row.inventory_stamp, row.checked_at))
            row.pk, row.evaluated_at = found.id, found.evaluated_at
            row.run_id, row.forced = found.run_id, found.forced
        else:
            new.append(row)
    with transaction.atomic():
        if copy:
            copy_lines(PolicyEvaluation, EVALUATION_COLUMNS, [copy_line(row) for row in new])
        else:
            saved = PolicyEvaluation.objects.bulk_create([r.model() for r in new], batch_size=500)
            for row, model in zip(new, saved, strict=True):
                row.pk = model.pk
        if confirmed:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE policies_policyevaluation AS e SET inventory_stamp = v.stamp,"
                    " checked_at = v.checked FROM unnest(%s::bigint[], %s::text[],"
                    " %s::timestamptz[]) AS v(id, stamp, checked) WHERE e.id = v.id",
                    [list(c) for c in zip(*confirmed, strict=True)],
                )


def copy_line(row: Outcome) -> str:
    """`row.values()` in COPY's text format (what `copy_rows` makes of them), written out
    for this table: a first sweep stores a row per pair, and formatting them value by
    value was a sixth of its CPU."""
    evaluated = row.evaluated_at.isoformat()
    checked = evaluated if row.checked_at is row.evaluated_at else row.checked_at.isoformat()
    violations = copy_value(row.violations) if row.violations else "[]"
    errors = copy_value(row.errors) if row.errors else "[]"
    return (
        f"{row.policy.pk}\t{row.cluster.pk}\t{copy_text(row.cluster.name)}\t{row.run_id}\t{copy_text(row.status)}\t"
        f"{copy_text(row.message)}\t{violations}\t{errors}\t{row.violations_total}\t"
        f"{row.errors_total}\t{row.objects_checked}\t{row.policy_generation}\t"
        f"{copy_text(row.inventory_stamp)}\t{'t' if row.forced else 'f'}\t{evaluated}\t"
        f"{checked}\t{copy_text(row.digest)}"
    )
