from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "fleet.operations"
    label = "operations"
    verbose_name = "Operations"
