from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.channels_page, name="channels"),
    path("channels/<int:pk>/", views.channel_edit_page, name="channel-edit"),
    path("channels/<int:pk>/test/", views.channel_test_page, name="channel-test"),
    path("channels/<int:pk>/delete/", views.channel_delete_page, name="channel-delete"),
    path("deliveries/", views.deliveries_page, name="deliveries"),
    path("deliveries/<int:pk>/retry/", views.delivery_retry_page, name="delivery-retry"),
]
