"""Small factories for tests."""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

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


class Member:
    """A user with a role in a team, and clients acting as them, made when first used:
    `api` (authenticated without a token) and `page` (a logged-in session, as a browser)."""

    def __init__(self, user: Any) -> None:
        self.user = user

    @cached_property
    def api(self) -> APIClient:
        client = APIClient()
        client.force_authenticate(self.user)
        return client

    @cached_property
    def page(self) -> Client:
        client = Client()
        client.force_login(self.user)
        return client


def member_of(team: Team, role: Role, *, username: str | None = None) -> Member:
    """A new user with `role` in `team`."""
    user = make_user(username=username)
    add_member(team, user, role)
    return Member(user)


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
