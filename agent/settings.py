"""Django settings of the agent process (`DJANGO_SETTINGS_MODULE=agent.settings`, the
image's default): only what the parts of the hub it uses read (`kube`, the policy engine).
The agent has no database, no web server and no secret key."""

from __future__ import annotations

USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Calls to this cluster's API server (kube/client.py).
KEELSON_CLUSTER_CONNECT_TIMEOUT = 5.0
KEELSON_CLUSTER_READ_TIMEOUT = 15.0
# The hub's egress guard (kube/egress.py) keeps the hub off internal addresses; the agent
# talks only to its own cluster, wherever that lives.
KEELSON_CLUSTER_URL_ALLOWLIST: list[str] = []
KEELSON_CLUSTER_ALLOW_LOOPBACK = True
KEELSON_MAX_LABELS = 64
