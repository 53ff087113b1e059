from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("tokens/", views.tokens_page, name="tokens"),
    path("password/", views.password_page, name="password"),
]
