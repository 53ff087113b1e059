"""Create the first administrator (password printed once) and a default team."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.choices import Role
from accounts.models import Team
from accounts.services import membership_set, team_create


class Command(BaseCommand):
    help = "Create the first admin account and the 'platform' team if there are none."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("admin account exists (password was printed when it was created)")
            return
        password = secrets.token_urlsafe(12)
        admin = users.objects.create_superuser(
            username=options["username"], email="", password=password
        )
        team = Team.objects.filter(name="platform").first() or team_create(
            name="platform", display_name="Platform team", actor=admin
        )
        membership_set(team=team, user=admin, role=Role.ADMIN, actor=admin)
        self.stdout.write(
            self.style.SUCCESS(
                f"created admin account: user {admin.get_username()!r} password {password!r} "
                "(shown once: note it now)"
            )
        )
