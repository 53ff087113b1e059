from django.urls import path

from operations.consumers import OperationConsumer

websocket_urlpatterns = [
    path("ws/operations/<uuid:operation_id>/", OperationConsumer.as_asgi()),
]
