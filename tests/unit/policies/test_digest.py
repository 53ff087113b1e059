"""An outcome's digest is what says a new sweep found the same outcome as the stored one:
its text must stay exactly what earlier releases hashed, or every pair would be stored
again once after an upgrade."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.db.copy import copy_value
from policies.choices import ResultStatus
from policies.services.evaluation import Outcome
from policies.services.evaluation.outcomes import digest
from policies.services.evaluation.store import copy_line


def _as_before(row: Outcome) -> str:
    """The digest as releases before the fast path computed it."""
    outcome = [
        row.policy_generation,
        row.status,
        row.message,
        row.objects_checked,
        row.violations_total,
        row.errors_total,
        row.violations,
        row.errors,
    ]
    return hashlib.blake2b(json.dumps(outcome, sort_keys=True).encode(), digest_size=16).hexdigest()


_listed = st.lists(
    st.dictionaries(st.sampled_from(["namespace", "name", "kind", "message"]), st.text()),
    max_size=3,
)


@given(
    generation=st.integers(min_value=1, max_value=2**40),
    status=st.sampled_from(list(ResultStatus)),
    message=st.text(),
    checked=st.integers(min_value=0, max_value=10**6),
    violations=_listed,
    errors=_listed,
)
def test_digest_text_is_unchanged(
    generation: int,
    status: ResultStatus,
    message: str,
    checked: int,
    violations: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> None:
    now = datetime.now(UTC)
    row = Outcome(None, None, uuid.uuid4(), generation, "stamp", False, now, now)  # type: ignore[arg-type]
    row.status, row.message, row.objects_checked = status, message, checked
    row.violations, row.errors = violations, errors
    row.violations_total, row.errors_total = len(violations), len(errors)
    assert digest(row) == _as_before(row)


class _Pk:
    """A policy or cluster as an outcome row reads it: its id (and a cluster its name, which
    the row keeps for when the cluster is gone)."""

    def __init__(self, pk: int, name: str = "cluster-\t\\name") -> None:
        self.pk = pk
        self.name = name


@given(
    status=st.sampled_from(list(ResultStatus)),
    message=st.text(),
    stamp=st.text(),
    forced=st.booleans(),
    violations=_listed,
    errors=_listed,
    checked_later=st.booleans(),
)
def test_copy_line_is_what_copy_rows_makes(
    status: ResultStatus,
    message: str,
    stamp: str,
    forced: bool,
    violations: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    checked_later: bool,
) -> None:
    """The sweep's own COPY line for an outcome equals the generic value-by-value one."""
    now = datetime.now(UTC)
    later = now.replace(microsecond=0) if checked_later else now
    row = Outcome(_Pk(3), _Pk(11), uuid.uuid4(), 7, stamp, forced, now, later)  # type: ignore[arg-type]
    row.status, row.message, row.objects_checked = status, message, 9
    row.violations, row.errors = violations, errors
    row.violations_total, row.errors_total = len(violations), len(errors)
    row.digest = digest(row)
    assert copy_line(row) == "\t".join(map(copy_value, row.values()))
