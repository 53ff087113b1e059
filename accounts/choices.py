from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    """A member's role in a team; each role includes the ones below it."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class TokenScope(models.TextChoices):
    """What an API token may do. A token never grants more than its user has: its scope
    caps the user's role in every team (read: viewer, write: operator, admin: no cap)."""

    READ = "read", "Read (GET, HEAD, OPTIONS only)"
    WRITE = "write", "Write (up to operator actions)"
    ADMIN = "admin", "Admin (everything the user may do)"

    @property
    def role_cap(self) -> Role:
        return _ROLE_CAPS[self]


_ROLE_CAPS = {
    TokenScope.READ: Role.VIEWER,
    TokenScope.WRITE: Role.OPERATOR,
    TokenScope.ADMIN: Role.ADMIN,
}


class MembershipSource(models.TextChoices):
    """Where a membership comes from: made by hand (a team admin, the API), or by the group
    mapping at each single sign-on (then only the identity provider's groups change it)."""

    LOCAL = "local", "Local"
    IDP = "idp", "Identity provider"
