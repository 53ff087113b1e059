from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from fleet import views
from fleet.accounts.login import ThrottledLoginView
from fleet.operations.views import operation_detail

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("fleet.accounts.urls")),
    path("operations/<uuid:operation_id>/", operation_detail, name="operation-detail"),
    path("clusters/", include("clusters.urls")),
    path("costs/", include("clusters.cost.urls")),
    path("applications/", include("fleet.placement.urls")),
    path("policies/", include("policies.urls")),
    path("api/v1/", include("fleet.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
