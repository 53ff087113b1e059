"""`/api/v1/`: one router for every app's viewsets."""

from rest_framework.routers import DefaultRouter

from fleet.accounts.api.views import TeamViewSet
from fleet.audit.api.views import AuditEventViewSet
from fleet.operations.api.views import OperationViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("operations", OperationViewSet, basename="operation")
router.register("audit-events", AuditEventViewSet, basename="auditevent")

urlpatterns = router.urls
