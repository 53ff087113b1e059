from django.urls import path

from applications import views

app_name = "applications"

urlpatterns = [
    path("", views.application_list_page, name="list"),
    path("new/", views.application_create_page, name="create"),
    path("<slug:name>/", views.application_detail_page, name="detail"),
    path("<slug:name>/placement/", views.placement_edit_page, name="edit"),
    path("<slug:name>/placement/preview/", views.placement_preview_fragment, name="preview"),
    path("<slug:name>/rollout/", views.application_rollout_page, name="rollout"),
    path("<slug:name>/versions/", views.application_version_page, name="version"),
    path("<slug:name>/delete/", views.application_delete_page, name="delete"),
    path("<slug:name>/evict/", views.application_evict_page, name="evict"),
]
