from django.urls import path

from gitops import views

app_name = "gitops"

urlpatterns = [
    path("", views.repository_list_page, name="list"),
    path("<int:pk>/", views.repository_detail_page, name="detail"),
    path("<int:pk>/sync/", views.repository_sync_page, name="sync"),
    path("<int:pk>/rollback/", views.repository_rollback_page, name="rollback"),
    path("<int:pk>/unpin/", views.repository_unpin_page, name="unpin"),
]
