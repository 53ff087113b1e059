from django.urls import path

from updates import views, views_strategies

app_name = "updates"

urlpatterns = [
    path("", views.run_list_page, name="list"),
    path("new/", views.run_create_page, name="new"),
    path("<uuid:pk>/", views.run_detail_page, name="detail"),
    path("<uuid:pk>/progress/", views.run_progress_fragment, name="progress"),
    path("<uuid:pk>/preview/", views.run_preview_fragment, name="preview"),
    path("<uuid:pk>/start/", views.run_action_page, {"action": "start"}, name="start"),
    path("<uuid:pk>/pause/", views.run_action_page, {"action": "pause"}, name="pause"),
    path("<uuid:pk>/resume/", views.run_action_page, {"action": "resume"}, name="resume"),
    path("<uuid:pk>/abort/", views.run_action_page, {"action": "abort"}, name="abort"),
    path("<uuid:pk>/approve/", views.run_approve_page, name="approve"),
    path("<uuid:pk>/skip/", views.run_skip_page, name="skip"),
    path("<uuid:pk>/delete/", views.run_delete_page, name="delete"),
    path("strategies/", views_strategies.strategy_list_page, name="strategies"),
    path("strategies/new/", views_strategies.strategy_edit_page, name="strategy-new"),
    path("strategies/<int:pk>/edit/", views_strategies.strategy_edit_page, name="strategy-edit"),
    path(
        "strategies/<int:pk>/delete/", views_strategies.strategy_delete_page, name="strategy-delete"
    ),
    path("windows/", views_strategies.window_list_page, name="windows"),
    path("windows/new/", views_strategies.window_edit_page, name="window-new"),
    path("windows/<int:pk>/edit/", views_strategies.window_edit_page, name="window-edit"),
    path("windows/<int:pk>/delete/", views_strategies.window_delete_page, name="window-delete"),
]
