from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from accounts.choices import MembershipSource, Role, TokenScope

slug_validator = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    "Use lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(at most 63 characters).",
)


def list_all_namespaces() -> list[str]:
    return ["*"]


class Team(models.Model):
    """A group of people that owns clusters and applications."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Guardrails on what the team's applications may contain (accounts/guardrails.py).
    # Teams that existed before these fields keep ["*"] and cluster-scoped kinds on
    # (migration 0002); new teams start with cluster-scoped kinds off.
    allowed_namespaces = models.JSONField(default=list_all_namespaces, blank=True)
    allow_cluster_scoped = models.BooleanField(default=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # idp: made by the group mapping at sign-in; only the provider's groups change it.
    source = models.CharField(
        max_length=8,
        choices=MembershipSource.choices,
        default=MembershipSource.LOCAL,
        db_default=MembershipSource.LOCAL,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user"),
            models.CheckConstraint(
                condition=models.Q(source__in=MembershipSource.values),
                name="membership_source_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class ApiToken(models.Model):
    """A personal API token. Only the SHA-256 of the secret is stored; the secret is shown
    once, at creation or rotation (accounts/tokens.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    # The first characters of the secret ("kls_ab12cd"), so a user can tell tokens apart.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=TokenScope.values), name="apitoken_scope_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class GroupMapping(models.Model):
    """A group of the identity provider's groups claim gives its members `role` in `team`,
    applied at each single sign-on (accounts/sso.py). Several rules reaching one team give
    the highest of their roles."""

    group = models.CharField(max_length=255)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="group_mappings")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "team__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "team"], name="groupmapping_unique_group_team"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="groupmapping_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group} → {self.team.name} as {self.role}"


class ExternalIdentity(models.Model):
    """The identity provider's account (issuer and `sub`) behind a Keelson user: the user
    is found by it, never by a user name or e-mail address the provider sends."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identity"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True)
    last_sign_in = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_unique_sub"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
