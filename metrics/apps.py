from __future__ import annotations

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        # Celery's task signals fire only in worker processes; connecting them everywhere
        # is harmless and needs no worker-specific entry point.
        from metrics import tasks

        tasks.connect()
