"""Fleet update runs: staged, gated, reversible changes to many clusters (docs/updates.md)."""

from django.apps import AppConfig


class UpdatesConfig(AppConfig):
    name = "updates"
    label = "updates"
    verbose_name = "Update runs"

    def ready(self) -> None:
        # Imported here, as Django wants: models are loaded only once apps are ready.
        from applications.holds import application_holders
        from updates.signals import application_held_by_run

        application_holders.connect(application_held_by_run, dispatch_uid="updates.app_holds")
