"""Logged-in clients of a team member, for the attack tests."""

from __future__ import annotations

from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from tests.factories import add_member, make_team, make_user


def _member(team: str, role: Role) -> Any:
    user = make_user()
    add_member(make_team(name=team), user, role)
    return user


def api_member(team: str, role: Role) -> APIClient:
    """An API client of a new user with `role` in a new team named `team`."""
    client = APIClient()
    client.force_authenticate(_member(team, role))
    return client


def page_member(team: str, role: Role) -> Client:
    """A logged-in browser-like client of a new user with `role` in a new team `team`."""
    client = Client()
    client.force_login(_member(team, role))
    return client
