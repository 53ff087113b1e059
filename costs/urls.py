from django.urls import path

from costs import views

app_name = "cost"

urlpatterns = [
    path("", views.cost_explorer, name="explorer"),
    path("chargeback/", views.cost_chargeback, name="chargeback"),
    path("rate-cards/", views.rate_cards_page, name="rate-cards"),
    path("budgets/", views.budget_create_page, name="budget-create"),
    path("clusters/<slug:name>/", views.cluster_cost_fragment, name="cluster"),
    path("budgets/<slug:name>/delete/", views.budget_delete_page, name="budget-delete"),
]
