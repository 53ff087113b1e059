"""The bundled library: loaded by a management command, idempotent, kept up to date."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.services import team_create
from policies.choices import Mode
from policies.library import library
from policies.models import Policy, PolicyRule
from policies.services.policies import PolicySpec, policy_create
from tests.factories import make_team

pytestmark = pytest.mark.django_db


def _load(*args: str) -> str:
    out = StringIO()
    call_command("policies_load_library", *args, stdout=out)
    return out.getvalue()


def test_load_is_idempotent_and_updates_changed_bundled_policies() -> None:
    # given a team with its own policy named like a library one, and another team
    team, other = make_team(name="payments"), make_team(name="search")
    own = policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="ops-probes",
            rules=[{"name": "r", "kind": "cluster", "expression": "cluster.nodeCount > 0"}],
        ),
    )
    count = len(library())

    # when loaded for one team, twice
    first = _load("--team", "payments")
    second = _load("--team", "payments")

    # then everything is created once, the team's own policy is left alone
    assert f"payments: {count - 1} created, 0 updated, 0 unchanged, 1 skipped" in first
    assert f"payments: 0 created, 0 updated, {count - 1} unchanged, 1 skipped" in second
    assert not Policy.objects.filter(team=other).exists()
    own.refresh_from_db()
    assert not own.bundled and own.rules.get().expression == "cluster.nodeCount > 0"
    privileged = Policy.objects.get(team=team, name="pss-baseline-privileged")
    assert privileged.bundled and privileged.generation == 1
    assert privileged.standards == ["pss-baseline", "pss-restricted"]

    # when a bundled rule drifted (an older library) and the team chose enforce
    PolicyRule.objects.filter(policy=privileged).update(expression="true")
    Policy.objects.filter(pk=privileged.pk).update(mode="enforce")
    third = _load()

    # then it is brought back to the library, keeping the team's mode, with a new generation
    assert f"payments: 0 created, 1 updated, {count - 2} unchanged, 1 skipped" in third
    assert f"search: {count} created" in third
    privileged.refresh_from_db()
    assert privileged.generation == 2 and privileged.mode == "enforce"
    assert "privileged" in privileged.rules.get().expression


def test_an_unknown_team_is_an_error() -> None:
    with pytest.raises(CommandError, match="No such team: nope"):
        _load("--team", "nope")


def test_a_team_created_through_the_service_starts_with_the_library_in_inform_mode() -> None:
    # accounts announces the team (accounts.signals.team_created); policies, a layer above,
    # gives it the library in the same transaction
    team = team_create(name="checkout", actor=None)

    policies = Policy.objects.filter(team=team)
    assert policies.count() == len(library()) > 0
    assert set(policies.values_list("mode", flat=True)) == {Mode.INFORM}
    assert Policy.objects.exclude(team=team).count() == 0
