from django.apps import AppConfig


class CostConfig(AppConfig):
    name = "costs"
    label = "cost"
    verbose_name = "Cost"
    default_auto_field = "django.db.models.BigAutoField"
