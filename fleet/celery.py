"""`celery -A fleet` finds the application here; it is defined in core/celery.py."""

from core.celery import app

__all__ = ["app"]
