from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.alerts_page, name="list"),
    path("<int:pk>/", views.alert_detail_page, name="detail"),
    path("<int:pk>/acknowledge/", views.alert_acknowledge_page, name="acknowledge"),
    path("rules/", views.rules_page, name="rules"),
    path("rules/new/", views.rule_create_page, name="rule-create"),
    path("rules/<int:pk>/edit/", views.rule_edit_page, name="rule-edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle_page, name="rule-toggle"),
    path("rules/<int:pk>/delete/", views.rule_delete_page, name="rule-delete"),
    path("silences/", views.silences_page, name="silences"),
    path("silences/new/", views.silence_create_page, name="silence-create"),
    path("silences/<int:pk>/expire/", views.silence_expire_page, name="silence-expire"),
    path("cluster/<slug:name>/", views.cluster_alerts_fragment, name="cluster"),
    path("panel/", views.firing_panel_fragment, name="panel"),
]
