"""An agent's pull reads a cluster's work in a fixed number of queries, however many
applications are placed on it (it was one version query per application)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.choices import Role
from applications.propagation import agent_work, work_target
from applications.services import application_create
from clusters.choices import ClusterMode
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{n}}}\ndata: {{a: b}}\n"


def _pull(applications: int) -> int:
    """Queries of a first and of a repeated pull (nothing changed) with `applications`."""
    team = make_team(name=f"shop{applications}")
    admin = make_user(username=f"ada{applications}")
    add_member(team, admin, Role.ADMIN)
    edge = make_cluster(team=team, name=f"edge-{applications}", mode=ClusterMode.PULL)
    for n in range(applications):
        application = application_create(
            actor=admin, team=team, name=f"a{applications}-{n}", namespace=f"ns-{n}",
            manifests=MANIFEST.format(n=n),
        )  # fmt: skip
        work_target(application=application, cluster=edge, version=1, replicas=None)
    agent_work(cluster=edge)  # the first pull marks each work delivered (a write each)
    with CaptureQueriesContext(connection) as repeated:
        work = agent_work(cluster=edge)
    assert len(work["objects"]) == 2 * applications  # a namespace and a ConfigMap each
    return len(repeated)


def test_a_repeated_pull_costs_the_same_queries_for_2_and_for_12_applications() -> None:
    assert _pull(12) == _pull(2) <= 3
