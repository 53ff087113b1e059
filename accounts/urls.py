from django.urls import path

from accounts import oidc_views, team_views, views

app_name = "accounts"

urlpatterns = [
    path("tokens/", views.tokens_page, name="tokens"),
    path("password/", views.password_page, name="password"),
    path("oidc/login/", oidc_views.sso_login, name="oidc-login"),
    path("oidc/callback/", oidc_views.sso_callback, name="oidc-callback"),
    path("teams/", team_views.teams_page, name="teams"),
    path("teams/<slug:name>/", team_views.team_page, name="team"),
    path("group-mappings/", team_views.group_mappings_page, name="group-mappings"),
]
