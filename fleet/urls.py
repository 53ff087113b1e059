from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.login import ThrottledLoginView, admin_login_redirect
from accounts.oidc_views import sso_logout
from costs.views import cluster_pricing_page
from dashboard import views
from metrics.views import metrics

urlpatterns = [
    path("", views.home, name="home"),
    path("refresh-now/", views.refresh_now, name="refresh-now"),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/pipeline", views.healthz_pipeline, name="healthz-pipeline"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    # Ends the session and, after a single sign-on, the provider's (accounts/oidc_views.py).
    path("accounts/logout/", sso_logout, name="logout"),
    # Pages only; the API names its routes `<basename>-detail` etc. (fleet/api/urls.py).
    path("operations/", include("operations.urls")),
    path("accounts/", include("accounts.urls")),
    # The cluster page's pricing form posts here; costs sits above clusters.
    path("clusters/<slug:name>/pricing/", cluster_pricing_page, name="cluster-pricing"),
    path("clusters/", include("clusters.urls")),
    path("costs/", include("costs.urls")),
    path("applications/", include("applications.urls")),
    path("policies/", include("policies.urls")),
    path("notifications/", include("notifications.urls")),
    path("alerts/", include("alerts.urls")),
    path("gitops/", include("gitops.urls")),
    path("updates/", include("updates.urls")),
    path("api/v1/", include("fleet.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # The admin's own login has no attempt limit: it goes through the app's.
    path("admin/login/", admin_login_redirect, name="admin-login"),
    path("admin/", admin.site.urls),
]
