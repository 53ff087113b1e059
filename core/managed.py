"""Objects declared in a Git repository (gitops) carry a `managed_by` marker; edits from
the API or a page are refused while it is set, so Git stays the one source of their state.
The marker is plain JSON on the object's row, so any layer can check it without importing
gitops: {"repository": id, "name": repository name, "commit": full sha}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from rest_framework import status
from rest_framework.exceptions import APIException


def managed_message(marker: Any) -> str | None:
    """The refusal for an object with this marker, or None when nothing manages it."""
    if not isinstance(marker, dict) or not marker.get("repository"):
        return None
    name = str(marker.get("name") or marker["repository"])
    commit = str(marker.get("commit") or "")[:7]
    return f"managed by git-repository {name} at commit {commit}; change it in Git."


class ManagedByGit(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "managed"
    default_detail = "managed by a git-repository; change it in Git."


def refuse_if_managed(obj: Any) -> None:
    """For API views: 409 naming the repository and commit when a repository owns `obj`."""
    if message := managed_message(getattr(obj, "managed_by", None)):
        raise ManagedByGit(message)


def refuse_page_if_managed(obj: Any) -> None:
    """For pages: 403 with the same reason."""
    if message := managed_message(getattr(obj, "managed_by", None)):
        raise PermissionDenied(message)
