"""End of life on the cluster list: each cluster's state (past, soon = within 90 days,
supported, unknown) and date in the API and as a badge on the page, and `?eol=` filtering
both, judged on the shipped table (clusters/eol.json) as of 2026-11-01."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters import eol
from clusters.models import Cluster
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

# name: (provider, version, state, date), worked out by hand from clusters/eol.json
EXPECTED = {
    # upstream 1.20 ended 2022-02-28
    "old-local": ("local", "v1.20.2", "past", "2022-02-28"),
    # upstream 1.34 ended 2026-10-27, five days before
    "recent-onprem": ("onprem", "v1.34.1", "past", "2026-10-27"),
    # EKS 1.34 ends 2026-12-02: 31 days ahead
    "eks-soon": ("aws", "v1.34.2-eks-113cf36", "soon", "2026-12-02"),
    # EKS 1.35 ends 2027-03-27: 146 days ahead
    "eks-new": ("aws", "1.35.0", "supported", "2027-03-27"),
    # GKE has no 1.33 date: upstream's 2026-06-28
    "gke-fallback": ("gcp", "v1.33.5-gke.1080000", "past", "2026-06-28"),
    # AKS 1.25 ended 2024-01-14 (upstream's 2023-10-28 does not apply)
    "aks-old": ("azure", "v1.25.6", "past", "2024-01-14"),
    # not in any table, and 1.3 is not 1.30
    "future": ("other", "v1.40.0", "unknown", None),
    "tiny": ("other", "v1.3.0", "unknown", None),
    "blank": ("edge", "", "unknown", None),
}


def _names(state: str) -> set[str]:
    return {name for name, (_, _, s, _) in EXPECTED.items() if s == state}


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(eol, "eol_today", lambda: date(2026, 11, 1))
    eol.eol_table(fresh=True)  # the shipped table, whatever a test before installed
    team = make_team(name="fleet-eol")
    for name, (provider, version, _, _) in EXPECTED.items():
        make_cluster(team=team, name=name, provider=provider, kubernetes_version=version)
    user = make_user(username="eol-viewer")
    add_member(team, user, Role.VIEWER)
    return user


def test_api_shows_each_cluster_state_and_date(fleet: Any) -> None:
    client = APIClient()
    client.force_authenticate(fleet)
    body = client.get("/api/v1/clusters/", {"limit": 50}).json()
    shown = {c["name"]: (c["eol_state"], c["eol_date"]) for c in body["results"]}
    assert shown == {name: (state, day) for name, (_, _, state, day) in EXPECTED.items()}


@pytest.mark.parametrize("state", ["past", "soon", "supported", "unknown"])
def test_api_filters_by_state(fleet: Any, state: str) -> None:
    client = APIClient()
    client.force_authenticate(fleet)
    body = client.get("/api/v1/clusters/", {"eol": state, "limit": "50"}).json()
    assert {c["name"] for c in body["results"]} == _names(state)


def test_api_refuses_an_unknown_state_naming_the_field(fleet: Any) -> None:
    client = APIClient()
    client.force_authenticate(fleet)
    response = client.get("/api/v1/clusters/", {"eol": "ancient"})
    assert response.status_code == 400
    assert "eol" in response.json()["error"]["fields"]


def test_update_runs_find_the_clusters_past_end_of_life(fleet: Any) -> None:
    past = eol.clusters_past_eol(Cluster.objects.all())
    assert set(past.values_list("name", flat=True)) == _names("past")


def test_page_shows_badges_and_filters(fleet: Any) -> None:
    client = Client()
    client.force_login(fleet)
    page = client.get("/clusters/").content.decode()
    assert "End of life" in page
    assert (
        '<span class="eol eol-past" data-eol="past" title="Past end of life">'
        "past end of life (2022-02-28)</span>" in page
    )
    assert "end of life 2026-12-02" in page and "supported until 2027-03-27" in page
    filtered = client.get("/clusters/", {"eol": "soon"}).content.decode()
    assert "eks-soon" in filtered
    assert not {"old-local", "eks-new", "future", "blank"} & {
        name for name in EXPECTED if f">{name}</a>" in filtered
    }
    assert '<option value="soon" selected>' in filtered
