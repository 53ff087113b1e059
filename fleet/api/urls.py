"""`/api/v1/`: one router for every app's viewsets, plus the pull-mode agent endpoints."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.audit import AuditEventViewSet
from accounts.api.sso import GroupMappingViewSet
from accounts.api.tokens import ApiTokenViewSet
from accounts.api.views import TeamViewSet
from alerts.api.views import AlertRuleViewSet, AlertViewSet, SilenceViewSet
from applications.api.agent import AgentWorkView
from applications.api.views import ApplicationViewSet
from clusters.api.agent import (
    AgentCleanupView,
    AgentEnrollView,
    AgentHeartbeatView,
    AgentRotateView,
)
from clusters.api.provisioning import ClusterTemplateViewSet, ProviderViewSet
from clusters.api.views import ClusterSetViewSet, ClusterViewSet
from costs.api import (
    BudgetViewSet,
    ClusterPricingViewSet,
    CostView,
    InstancePriceViewSet,
    RateCardViewSet,
)
from gitops.api.views import GitRepositoryViewSet
from notifications.api.views import ChannelViewSet, DeliveryViewSet
from operations.api.views import OperationViewSet
from policies.api.agent import AgentPoliciesView
from policies.api.reports import ComplianceReportViewSet, ReportDefinitionViewSet
from policies.api.views import ComplianceView, EvaluationViewSet, PolicyViewSet, PssPinViewSet
from updates.api.views import MaintenanceWindowViewSet, UpdateRunViewSet, UpdateStrategyViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", ApiTokenViewSet, basename="apitoken")
router.register("group-mappings", GroupMappingViewSet, basename="groupmapping")
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("cluster-sets", ClusterSetViewSet, basename="clusterset")
router.register("cluster-templates", ClusterTemplateViewSet, basename="clustertemplate")
router.register("providers", ProviderViewSet, basename="provider")
router.register("instance-prices", InstancePriceViewSet, basename="instanceprice")
router.register("rate-cards", RateCardViewSet, basename="ratecard")
router.register("cluster-pricing", ClusterPricingViewSet, basename="clusterpricing")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("applications", ApplicationViewSet, basename="application")
router.register("git-repositories", GitRepositoryViewSet, basename="gitrepository")
router.register("operations", OperationViewSet, basename="operation")
router.register("notification-channels", ChannelViewSet, basename="notificationchannel")
router.register("notification-deliveries", DeliveryViewSet, basename="notificationdelivery")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("policies", PolicyViewSet, basename="policy")
router.register("policy-evaluations", EvaluationViewSet, basename="policyevaluation")
router.register("pss-pins", PssPinViewSet, basename="psspin")
router.register("report-definitions", ReportDefinitionViewSet, basename="reportdefinition")
router.register("compliance-reports", ComplianceReportViewSet, basename="compliancereport")
router.register("alert-rules", AlertRuleViewSet, basename="alertrule")
router.register("alerts", AlertViewSet, basename="alert")
router.register("silences", SilenceViewSet, basename="silence")
router.register("update-strategies", UpdateStrategyViewSet, basename="updatestrategy")
router.register("maintenance-windows", MaintenanceWindowViewSet, basename="maintenancewindow")
router.register("update-runs", UpdateRunViewSet, basename="updaterun")

urlpatterns = [
    path("agent/enroll", AgentEnrollView.as_view(), name="agent-enroll"),
    path("agent/heartbeat", AgentHeartbeatView.as_view(), name="agent-heartbeat"),
    path("agent/rotate", AgentRotateView.as_view(), name="agent-rotate"),
    path("agent/work", AgentWorkView.as_view(), name="agent-work"),
    path("agent/cleanup", AgentCleanupView.as_view(), name="agent-cleanup"),
    path("agent/policies", AgentPoliciesView.as_view(), name="agent-policies"),
    path("costs/", CostView.as_view(), name="costs"),
    path("compliance/", ComplianceView.as_view(), name="compliance"),
    *router.urls,
]
