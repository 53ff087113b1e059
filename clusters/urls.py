from django.urls import path

from clusters import views, views_lifecycle

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list_page, name="list"),
    path("register/", views.cluster_register_page, name="register"),
    path("create/", views_lifecycle.cluster_create_page, name="create"),
    path("register/contexts/", views.cluster_contexts_fragment, name="contexts"),
    path("<slug:name>/", views.cluster_detail_page, name="detail"),
    path("<slug:name>/edit/", views.cluster_edit, name="edit"),
    path("<slug:name>/deregister/", views.cluster_deregister_page, name="deregister"),
    path("<slug:name>/probe/", views.cluster_probe_page, name="probe"),
    path("<slug:name>/refresh/", views.cluster_refresh_page, name="refresh"),
    path("<slug:name>/scale/", views_lifecycle.cluster_scale_page, name="scale"),
    path("<slug:name>/upgrade/", views_lifecycle.cluster_upgrade_page, name="upgrade"),
    path("<slug:name>/update-pool/", views_lifecycle.cluster_update_pool_page, name="update-pool"),
    path("<slug:name>/destroy/", views_lifecycle.cluster_destroy_page, name="destroy"),
    path("<slug:name>/agent-token/", views.cluster_agent_token_page, name="agent-token"),
    path("<slug:name>/revoke-agent/", views.cluster_agent_revoke_page, name="agent-revoke"),
]
