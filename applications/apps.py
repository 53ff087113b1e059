from django.apps import AppConfig


class PlacementConfig(AppConfig):
    name = "applications"
    label = "placement"
    verbose_name = "Applications and placement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django wants: models are loaded only once apps are ready.
        from applications.signals import work_leftovers
        from clusters.services.pullcleanup import pull_cleanup_leftovers

        pull_cleanup_leftovers.connect(work_leftovers, dispatch_uid="applications.leftovers")
