from django.urls import path

from clusters.cost import views

app_name = "cost"

urlpatterns = [
    path("", views.cost_explorer, name="explorer"),
    path("chargeback/", views.cost_chargeback, name="chargeback"),
    path("rate-cards/", views.rate_cards_page, name="rate-cards"),
]
