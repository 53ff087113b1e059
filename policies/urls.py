from django.urls import path, re_path

from policies import views, views_reports

app_name = "policies"

urlpatterns = [
    path("", views.policy_list_page, name="list"),
    path("new/", views.policy_create_page, name="create"),
    path("reports/", views_reports.reports_page, name="reports"),
    path(
        "reports/definitions/<int:pk>/generate/",
        views_reports.report_generate_page,
        name="report-generate",
    ),
    re_path(
        r"^reports/(?P<pk>[0-9]+)/(?P<file_format>html|pdf|csv|json)/$",
        views_reports.report_download,
        name="report-download",
    ),
    path(
        "cluster/<slug:name>/compliance/",
        views.cluster_compliance_fragment,
        name="cluster-compliance",
    ),
    path("<slug:team>/<slug:name>/", views.policy_detail_page, name="detail"),
    path("<slug:team>/<slug:name>/edit/", views.policy_edit_page, name="edit"),
    path("<slug:team>/<slug:name>/evaluate/", views.policy_evaluate_page, name="evaluate"),
    path("<slug:team>/<slug:name>/preview/", views.policy_preview_page, name="preview"),
]
