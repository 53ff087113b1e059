from django.apps import AppConfig


class PlacementConfig(AppConfig):
    name = "applications"
    label = "placement"
    verbose_name = "Applications and placement"
    default_auto_field = "django.db.models.BigAutoField"
