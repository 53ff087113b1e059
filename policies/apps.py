from typing import Any

from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies and compliance"

    def ready(self) -> None:
        from accounts.signals import team_created

        team_created.connect(_give_library, dispatch_uid="policies.library_on_team_create")


def _give_library(sender: Any, team: Any, **kwargs: Any) -> None:
    """Every team starts with the bundled policy library, in inform mode (DESIGN.md)."""
    from policies.services.library import library_load

    library_load(team=team)
