"""Small factories for tests."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from accounts.choices import Role
from accounts.models import Membership, Team

_seq = itertools.count(1)


def make_user(*, username: str | None = None, superuser: bool = False, **extra: Any) -> Any:
    username = username or f"user{next(_seq)}"
    users = get_user_model()
    if superuser:
        return users.objects.create_superuser(username=username, password="pw-" + username, **extra)
    return users.objects.create_user(username=username, password="pw-" + username, **extra)


def make_team(*, name: str | None = None) -> Team:
    return Team.objects.create(name=name or f"team-{next(_seq)}")


def add_member(team: Team, user: Any, role: Role = Role.VIEWER) -> Membership:
    return Membership.objects.create(team=team, user=user, role=role)


def make_cluster(*, team: Team, name: str | None = None, **fields: Any) -> Any:
    from clusters.models import Cluster

    return Cluster.objects.create(name=name or f"cluster-{next(_seq)}", team=team, **fields)


def make_evaluation(*, policy: Any, cluster: Any, status: str, at: Any, **fields: Any) -> Any:
    """A stored policy outcome for `cluster`, found at `at`."""
    import uuid

    from policies.models import PolicyEvaluation

    return PolicyEvaluation.objects.create(
        policy=policy,
        cluster=cluster,
        cluster_name=cluster.name,
        run_id=uuid.uuid4(),
        status=status,
        policy_generation=1,
        evaluated_at=at,
        **fields,
    )
