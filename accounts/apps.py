from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out

from core.realtime.guard import on_logged_out


class AccountsConfig(AppConfig):
    name = "accounts"
    label = "accounts"
    verbose_name = "Accounts and teams"

    def ready(self) -> None:
        # A logout closes that session's live views at once (not only at the next check).
        user_logged_out.connect(on_logged_out, dispatch_uid="keelson-ws-logout")
        # Registers the OpenAPI description of the token authentication.
        from accounts import schema  # noqa: F401
