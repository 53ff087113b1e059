"""Logged-in clients of a team member, for the attack tests."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from tests.factories import make_team, member_of


def api_member(team: str, role: Role) -> APIClient:
    """An API client of a new user with `role` in a new team named `team`."""
    return member_of(make_team(name=team), role).api


def page_member(team: str, role: Role) -> Client:
    """A logged-in browser-like client of a new user with `role` in a new team `team`."""
    return member_of(make_team(name=team), role).page
