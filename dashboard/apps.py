from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The fleet overview and the project-wide commands (demo fleet, ping): reads every app."""

    name = "dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
