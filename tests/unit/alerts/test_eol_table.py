"""The shipped end-of-life table is valid, and bad tables are refused with a reason."""

from __future__ import annotations

import json
from datetime import date

import pytest

from clusters.eol import SHIPPED, EolTableError, minor_of, parse_table


def test_minor_versions_are_read_from_provider_version_strings() -> None:
    assert minor_of("v1.20.2") == "1.20"
    assert minor_of("1.29.3-eks-adc7111") == "1.29"
    assert minor_of("v1.30.1-gke.1329003") == "1.30"
    assert minor_of("") is None and minor_of("latest") is None


def test_the_shipped_table_is_valid_and_cites_its_sources() -> None:
    data = json.loads(SHIPPED.read_text())
    table = parse_table(data)
    assert table["upstream"]["1.20"] == date(2022, 2, 28)
    assert table["eks"]["1.29"] == date(2025, 3, 23)
    assert set(data["sources"]) == {"upstream", "eks", "gke", "aks"}
    assert all(url.startswith("https://") for url in data["sources"].values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "providers"),
        ({"providers": {"upstream": {}}}, "at least one"),
        ({"providers": {"upstream": {"1.20": "2022-02-28"}, "openshift": {}}}, "Unknown"),
        ({"providers": {"upstream": {"1.20": "soon"}}}, "not a date"),
        ({"providers": {"upstream": {"v1.20": "2022-02-28"}}}, "not a minor version"),
    ],
)
def test_bad_tables_are_refused(data: object, message: str) -> None:
    with pytest.raises(EolTableError, match=message):
        parse_table(data)
