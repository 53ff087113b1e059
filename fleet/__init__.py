"""Keelson's project package: settings, URLs, ASGI and Celery apps, fleet-wide features."""

from core.celery import app as celery_app

__all__ = ["celery_app"]
