from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "fleet.accounts"
    label = "accounts"
    verbose_name = "Accounts and teams"

    def ready(self) -> None:
        # Registers the OpenAPI description of the token authentication.
        from fleet.accounts import schema  # noqa: F401
