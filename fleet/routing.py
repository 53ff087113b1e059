"""Websocket routes of every app."""

from fleet.operations.routing import websocket_urlpatterns as operation_routes

websocket_urlpatterns = [*operation_routes]
