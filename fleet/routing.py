"""Websocket routes of every app."""

from django.urls import path

from clusters.routing import websocket_urlpatterns as cluster_routes
from dashboard.consumers import FleetConsumer
from operations.routing import websocket_urlpatterns as operation_routes

websocket_urlpatterns = [
    *operation_routes,
    *cluster_routes,
    path("ws/fleet/", FleetConsumer.as_asgi()),
]
