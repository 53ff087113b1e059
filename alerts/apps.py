"""Alert rules, their evaluation and lifecycle (firing, grouped, acknowledged, silenced,
resolved). Delivery is the notifications package's job."""

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    label = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        # Imported here, as Django wants: models are loaded only once apps are ready.
        from accounts.signals import team_created
        from alerts.signals import give_default_rules

        team_created.connect(give_default_rules, dispatch_uid="alerts.default_rules_on_team_create")
