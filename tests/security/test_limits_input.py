"""Issue 21 #7: hostile JSON, oversized bodies and pages, label floods, and an agent's
heartbeat without memory figures. Every refusal is a 4xx in the API's JSON error shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import Team
from clusters.models import Cluster
from clusters.services.registration import ClusterFields, agent_exchange, cluster_register_pull
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000  # 200 kB, well under the body limit
HOSTILE = {
    "nested 100,000 deep": DEEP,
    "an integer past 64 bits": '{"display_name": "x", "region": 18446744073709551616}',
    "1e400 (infinity to Python)": '{"display_name": "x", "region": 1e400}',
    "NaN": '{"display_name": NaN}',
}


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status
    return error


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_is_a_400_in_the_json_error_shape(
    operator: Member, team: Team, body: str
) -> None:
    make_cluster(team=team, name="eu-prod")
    response = operator.api.generic(
        "PATCH", "/api/v1/clusters/eu-prod/", body, content_type="application/json"
    )
    assert _error(response, 400)["code"] == "parse_error"
    assert Cluster.objects.get().display_name == ""


def _agent_token(team: Team) -> tuple[Cluster, str]:
    cluster, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-1", team=team)
    )
    _, token = agent_exchange(bootstrap_token=bootstrap)
    return cluster, token


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_on_the_agent_heartbeat_never_answers_500(team: Team, body: str) -> None:
    _, token = _agent_token(team)
    # anonymous (a made-up bearer token): the body was parsed before the token was checked
    anonymous = APIClient().generic(
        "POST",
        "/api/v1/agent/heartbeat",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer kat_not-a-token",
    )
    assert _error(anonymous, 401)["code"] == "authentication_failed"
    # and with the cluster's own token: a 400 naming the problem
    agent = APIClient().generic(
        "POST",
        "/api/v1/agent/heartbeat",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert _error(agent, 400)["code"] == "parse_error"


def test_a_body_past_the_endpoint_limit_is_413(operator: Member, team: Team, settings: Any) -> None:
    # given a 4 KiB API limit and an agent limit twice that
    settings.KEELSON_API_MAX_BODY_BYTES = 4096
    settings.KEELSON_AGENT_MAX_BODY_BYTES = 8192
    make_cluster(team=team, name="eu-prod")
    padded = {"display_name": "x", "description": "a" * 5000}

    # then an API change of 5 kB is refused whole, and nothing changed
    response = operator.api.patch("/api/v1/clusters/eu-prod/", padded, format="json")
    assert _error(response, 413)["message"] == "The request body is larger than 4096 bytes."
    assert Cluster.objects.get(name="eu-prod").description == ""
    # the same body form-encoded
    form = operator.api.generic(
        "PATCH",
        "/api/v1/clusters/eu-prod/",
        "description=" + "a" * 5000,
        content_type="application/x-www-form-urlencoded",
    )
    assert _error(form, 413)["code"] == "too_large"
    assert Cluster.objects.get(name="eu-prod").description == ""
    # and multipart, a file part included (Django's upload settings bound only the others)
    for body in ({"description": "a" * 5000}, {"upload": SimpleUploadedFile("k", b"k" * 6000)}):
        multipart = operator.api.patch("/api/v1/clusters/eu-prod/", body, format="multipart")
        assert _error(multipart, 413)["code"] == "too_large"
    assert Cluster.objects.get(name="eu-prod").description == ""

    # while the agent's heartbeat (a cluster's inventory) may be larger than the API's
    _, token = _agent_token(team)
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    inventory = {"kubernetes_version": "v1.30.0", "recent_warnings": [{"m": "w" * 5000}]}
    accepted = agent.post("/api/v1/agent/heartbeat", {"inventory": inventory}, format="json")
    assert accepted.status_code == 200, accepted.content
    huge = {"inventory": {"recent_warnings": [{"m": "w" * 9000}]}}
    refused = agent.post("/api/v1/agent/heartbeat", huge, format="json")
    assert _error(refused, 413)["message"] == "The request body is larger than 8192 bytes."


def test_page_size_is_capped(operator: Member, team: Team, settings: Any) -> None:
    settings.KEELSON_API_MAX_PAGE_SIZE = 2
    for name in ("a", "b", "c"):
        make_cluster(team=team, name=name)

    page = operator.api.get("/api/v1/clusters/?limit=1000000").json()
    assert page["count"] == 3
    assert len(page["results"]) == 2  # served at the cap, with a next link
    assert page["next"] is not None
    # an offset past PostgreSQL's bigint is an empty page, not a database error
    far = operator.api.get(f"/api/v1/clusters/?offset={10**30}")
    assert far.status_code == 200 and far.json()["results"] == []


def test_label_count_and_size_are_bounded(operator: Member, team: Team, settings: Any) -> None:
    make_cluster(team=team, name="eu-prod")
    url = "/api/v1/clusters/eu-prod/"

    # Kubernetes' own limits: key name 63, prefix 253, value 63
    too_long = operator.api.patch(url, {"labels": {"env": "v" * 64}}, format="json")
    assert "must be empty or at most 63 characters" in _error(too_long, 400)["message"]
    prefix = operator.api.patch(url, {"labels": {"a" * 254 + "/env": "prod"}}, format="json")
    assert "at most 253 characters" in _error(prefix, 400)["message"]
    # a huge key is refused without being echoed back whole
    flood = operator.api.patch(url, {"labels": {"k" * 100_000: "v"}}, format="json")
    assert len(flood.content) < 2000
    _error(flood, 400)

    # at most KEELSON_MAX_LABELS labels (64 by default)
    many = {f"l{i}": "x" for i in range(65)}
    counted = operator.api.patch(url, {"labels": many}, format="json")
    assert "At most 64 labels" in _error(counted, 400)["message"]
    fine = operator.api.patch(url, {"labels": dict(list(many.items())[:64])}, format="json")
    assert fine.status_code == 200
    assert len(Cluster.objects.get(name="eu-prod").labels) == 64


def test_a_heartbeat_without_memory_figures_does_not_break_the_cluster_page(
    team: Team, viewer: Member
) -> None:
    # given an agent whose nodes report CPU but no memory_bytes (nor gpu, pods)
    cluster, token = _agent_token(team)
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    node = {"name": "n1", "ready": True, "capacity": {"cpu_millis": 2000}, "allocatable": {}}
    reply = agent.post(
        "/api/v1/agent/heartbeat",
        {"inventory": {"kubernetes_version": "v1.30.0", "nodes": [node]}},
        format="json",
    )
    assert reply.status_code == 200, reply.content

    # when anyone of the team opens the cluster page
    response = viewer.page.get(f"/clusters/{cluster.name}/")

    # then it renders; the missing figures read as zero
    assert response.status_code == 200
    assert "0.0 GiB" in response.content.decode()


def test_a_multipart_body_longer_than_it_declared_is_cut_at_the_limit() -> None:
    # The declared length is checked first; the stream itself refuses past the limit too,
    # whatever the parser asks for at a time.
    import io

    from core.api.parsers import RequestTooLarge, _BoundedStream

    bounded = _BoundedStream(io.BytesIO(b"k" * 6000), 4096)
    assert len(bounded.read(4000)) == 4000
    assert len(bounded.read(96)) == 96
    with pytest.raises(RequestTooLarge):
        bounded.read(1000)
    whole = _BoundedStream(io.BytesIO(b"k" * 4096), 4096)
    assert len(whole.read()) == 4096  # exactly the limit is fine
