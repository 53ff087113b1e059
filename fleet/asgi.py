"""ASGI entry point: Django for HTTP, Channels for websockets (run by uvicorn)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from core.limits import raise_open_files_limit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
# The web's own defaults (fleet/settings.py, WEB_PROCESS): it keeps its requests' database
# connections (fleet/request_threads.py) and re-reads placement usage in the background.
os.environ["KEELSON_WEB_PROCESS"] = "true"
raise_open_files_limit()  # a socket per websocket and agent connection (core/limits.py)
django_asgi_app = get_asgi_application()
# Read once by the settings above; processes this one starts are not the web.
del os.environ["KEELSON_WEB_PROCESS"]

# Imported after Django is set up: routing pulls in models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from fleet.request_threads import RequestThreads  # noqa: E402
from fleet.routing import websocket_urlpatterns  # noqa: E402
from metrics.process import count_websockets  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestThreads(django_asgi_app, size=settings.KEELSON_WEB_THREADS),
        "websocket": count_websockets(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
