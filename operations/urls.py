from django.urls import path

from operations import views

app_name = "operations"

urlpatterns = [
    path("<uuid:operation_id>/", views.operation_detail, name="detail"),
    path("<uuid:operation_id>/cancel/", views.operation_cancel_page, name="cancel"),
]
