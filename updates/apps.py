"""Fleet update runs: staged, gated, reversible changes to many clusters (docs/updates.md)."""

from django.apps import AppConfig


class UpdatesConfig(AppConfig):
    name = "updates"
    label = "updates"
    verbose_name = "Update runs"
