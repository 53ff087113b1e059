"""End-of-life states: the end day counts as past, 90 days ahead as soon; the SQL filter's
version pattern reads versions as `minor_of` does."""

from __future__ import annotations

import re
from datetime import date

from clusters.choices import EolState
from clusters.eol import _minors_regex, eol_state

TODAY = date(2026, 11, 1)


def test_states_around_the_end_of_life() -> None:
    assert eol_state(None, today=TODAY) == EolState.UNKNOWN
    assert eol_state(date(2026, 10, 27), today=TODAY) == EolState.PAST  # upstream 1.34
    assert eol_state(TODAY, today=TODAY) == EolState.PAST  # the day itself
    assert eol_state(date(2026, 12, 2), today=TODAY) == EolState.SOON  # EKS 1.34, 31 days
    assert eol_state(date(2027, 1, 30), today=TODAY) == EolState.SOON  # day 90
    assert eol_state(date(2027, 1, 31), today=TODAY) == EolState.SUPPORTED  # day 91
    assert eol_state(date(2027, 3, 27), today=TODAY) == EolState.SUPPORTED  # EKS 1.35


def test_version_pattern_matches_minor_versions_exactly() -> None:
    pattern = re.compile(_minors_regex(["1.3", "1.20", "2.0"]))
    for version in ("v1.20.2", "1.20", "1.20.1-eks-1", "v1.3.0", "1.020.1", "v2.0.1"):
        assert pattern.search(version), version
    for version in ("v1.201.0", "1.30.2", "v11.20.0", "1.2", "", "latest", "v2.011"):
        assert not pattern.search(version), version
