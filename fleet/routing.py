"""Websocket routes of every app."""

from clusters.routing import websocket_urlpatterns as cluster_routes
from fleet.operations.routing import websocket_urlpatterns as operation_routes

websocket_urlpatterns = [*operation_routes, *cluster_routes]
