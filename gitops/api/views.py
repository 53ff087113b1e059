"""Git repositories API: register a repository (credentials and webhook secret write-only),
sync now, preview (the plan, nothing applied), the sync history, roll back to an earlier
commit and unpin, the objects and their sync state (drift), and the webhook that a Git
host calls on push (HMAC-SHA256 signed, no login)."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import user_has_role
from gitops.choices import PrunePolicy, SyncTrigger
from gitops.drift import with_rollouts
from gitops.models import GitObject, GitRepository, GitSync
from gitops.rollback import git_repository_unpin, git_rollback_start
from gitops.services import (
    git_repository_create,
    git_repository_delete,
    git_repository_update,
    git_sync_start,
    webhook_signature_valid,
)

# A repository acts for its whole team (it may declare enforcing policies): only admins
# register or change one; operators may sync and preview.
MANAGE_ROLE = Role.ADMIN
SYNC_ROLE = Role.OPERATOR


class GitRepositorySerializer(serializers.ModelSerializer[GitRepository]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = GitRepository
        fields = [
            "id",
            "name",
            "team",
            "url",
            "ref",
            "path",
            "has_credentials",
            "has_webhook_secret",
            "poll_interval",
            "prune",
            "auto_apply",
            "adopt",
            "last_commit",
            "last_result",
            "last_synced_at",
            "pinned_commit",
            "pinned_at",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "pinned_commit": {
                "help_text": "Set by a rollback: syncs apply this commit and polls and "
                "webhooks do nothing until `…/unpin/`. Empty: the ref is followed."
            }
        }


class GitRepositoryWriteSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63, help_text="Create only.")
    url = serializers.CharField(
        max_length=500, help_text="https://, ssh://, git:// or user@host:path."
    )
    ref = serializers.CharField(max_length=255, required=False, help_text="A branch or tag.")
    path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    credentials = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="A token (HTTPS) or a private SSH key; never shown again. Empty removes it.",
    )
    webhook_secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="The shared secret of the webhook's HMAC-SHA256 signature; never shown again.",
    )
    poll_interval = serializers.IntegerField(min_value=0, max_value=86400, required=False)
    prune = serializers.ChoiceField(choices=PrunePolicy.choices, required=False)
    auto_apply = serializers.BooleanField(required=False)
    adopt = serializers.BooleanField(
        required=False,
        help_text="Take over declared objects that exist in the team unowned (made in the API "
        "or a page; the plan shows `adopt`); objects another repository owns stay conflicts.",
    )


class GitSyncSerializer(serializers.ModelSerializer[GitSync]):
    class Meta:
        model = GitSync
        fields = [
            "id",
            "trigger",
            "apply",
            "commit",
            "result",
            "plan",
            "errors",
            "operation",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "plan": {
                "help_text": "Per object: action, kind, name, file, line, diff. A preview adds "
                "`placement` to applications (clusters, added, removed, replicas_moved, "
                "warnings, cost_per_month, cost_unpriced) and `compliance` to policies "
                "(clusters with violations and objects, not_previewed); an applied sync "
                "adds `rollout` (an operation id) or `rollout_error` to applications."
            }
        }


class SyncRequestSerializer(serializers.Serializer[Any]):
    commit = serializers.CharField(
        required=False,
        max_length=40,
        help_text="Apply only if the ref is still at this commit (approving a previewed plan).",
    )


class RollbackRequestSerializer(serializers.Serializer[Any]):
    commit = serializers.CharField(
        max_length=40,
        help_text="A commit this repository synced successfully before (sha or 7+ digits).",
    )
    preview = serializers.BooleanField(
        default=False, help_text="Only plan it: nothing is pinned or applied."
    )


class GitObjectSerializer(serializers.ModelSerializer[GitObject]):
    class Meta:
        model = GitObject
        fields = [
            "kind",
            "name",
            "file",
            "line",
            "commit",
            "status",
            "reason",
            "diff",
            "rollout",
            "since",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "commit": {"help_text": "The applied commit that declared it (empty: not yet)."},
            "since": {"help_text": "When the status or its reason last changed."},
            "diff": {
                "help_text": "Drifted: {field: {old: the value now, new: the value in Git, "
                "which the next sync restores}}; manifests as {diff: unified diff}."
            },
        }


class SyncRefSerializer(serializers.Serializer[Any]):
    sync = serializers.IntegerField()
    operation = serializers.UUIDField()


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


def _queued(sync: GitSync) -> Response:
    return Response(
        {"sync": sync.pk, "operation": str(sync.operation_id)}, status=status.HTTP_202_ACCEPTED
    )


class GitRepositoryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[GitRepository]
):
    serializer_class = GitRepositorySerializer
    queryset = GitRepository.objects.select_related("team")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=GitRepositoryWriteSerializer, responses={201: GitRepositorySerializer})
    def create(self, request: Request) -> Response:
        authorize_create(
            request, field="team", minimum=MANAGE_ROLE, doing="register git repositories"
        )
        payload = GitRepositoryWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        team = Team.objects.filter(name=data.pop("team")).first()
        if team is None or not user_has_role(request.user, team, Role.VIEWER):
            raise ValidationError({"team": ["No such team."]})
        self.require(team, MANAGE_ROLE, "register git repositories")
        try:
            repository = git_repository_create(actor=actor(request), team=team, **data)
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(GitRepositorySerializer(repository).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GitRepositoryWriteSerializer, responses=GitRepositorySerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        repository = self.get_object()
        self.require(repository.team, MANAGE_ROLE, "change git repositories", repository)
        payload = GitRepositoryWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "name" in changes or "team" in changes:
            raise ValidationError({"name": ["A repository cannot be renamed or moved."]})
        try:
            updated = git_repository_update(
                actor=actor(request), repository=repository, changes=changes
            )
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(GitRepositorySerializer(updated).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Forget the repository; the objects it declared stay and become editable."""
        repository = self.get_object()
        self.require(repository.team, MANAGE_ROLE, "delete git repositories", repository)
        git_repository_delete(actor=actor(request), repository=repository)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=SyncRequestSerializer, responses={202: SyncRefSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str | None = None) -> Response:
        """Sync now: fetch, validate, plan and apply (an Operation). With `commit`, only if
        the ref is still there: what a preview showed is what is applied."""
        repository = self.get_object()
        self.require(repository.team, SYNC_ROLE, "sync git repositories", repository)
        payload = SyncRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            sync = git_sync_start(
                repository=repository,
                trigger=SyncTrigger.MANUAL,
                actor=actor(request),
                commit=payload.validated_data.get("commit", ""),
            )
        except DjangoValidationError as error:
            raise _errors(error) from None
        return _queued(sync)

    @extend_schema(request=None, responses={202: SyncRefSerializer})
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """Fetch, validate and plan without applying; the plan is on the sync
        (`GET …/syncs/`) when the operation ends."""
        repository = self.get_object()
        self.require(repository.team, SYNC_ROLE, "preview git repositories", repository)
        sync = git_sync_start(
            repository=repository, trigger=SyncTrigger.PREVIEW, actor=actor(request), apply=False
        )
        return _queued(sync)

    @extend_schema(request=RollbackRequestSerializer, responses={202: SyncRefSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Re-apply an earlier commit this repository synced successfully (an Operation)
        and pin the repository to it; with `preview`, only its plan."""
        repository = self.get_object()
        self.require(repository.team, SYNC_ROLE, "roll back git repositories", repository)
        payload = RollbackRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            sync = git_rollback_start(
                repository=repository,
                commit=payload.validated_data["commit"],
                actor=actor(request),
                preview=payload.validated_data["preview"],
            )
        except DjangoValidationError as error:
            raise _errors(error) from None
        return _queued(sync)

    @extend_schema(request=None, responses=GitRepositorySerializer)
    @action(detail=True, methods=["post"])
    def unpin(self, request: Request, pk: str | None = None) -> Response:
        """Follow the ref again after a rollback: the next poll syncs its tip."""
        repository = self.get_object()
        self.require(repository.team, SYNC_ROLE, "unpin git repositories", repository)
        updated = git_repository_unpin(repository=repository, actor=actor(request))
        return Response(GitRepositorySerializer(updated).data)

    @extend_schema(responses=GitObjectSerializer(many=True))
    @action(detail=True, methods=["get"])
    def objects(self, request: Request, pk: str | None = None) -> Response:
        """Each object the repository declares and its sync state: synced, drifted
        (changed outside Git, with the diff), failed (with the reason) or pending."""
        repository = self.get_object()
        rows = with_rollouts(list(GitObject.objects.filter(repository=repository)))
        return Response(GitObjectSerializer(rows, many=True).data)

    @extend_schema(responses=GitSyncSerializer(many=True))
    @action(detail=True, methods=["get"])
    def syncs(self, request: Request, pk: str | None = None) -> Response:
        """The last 20 syncs, newest first, with their plans and errors."""
        repository = self.get_object()
        rows = GitSync.objects.filter(repository=repository)[:20]
        return Response(GitSyncSerializer(rows, many=True).data)

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses={202: SyncRefSerializer, 200: OpenApiTypes.OBJECT}
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[AllowAny],
        authentication_classes=[],
    )
    def webhook(self, request: Request, pk: str | None = None) -> Response:
        """For the Git host's push webhook: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the
        body with the repository's webhook secret>` (GitHub, Gitea), or GitLab's
        `X-Gitlab-Token: <the secret>`. A push to another
        ref is acknowledged and ignored."""
        body = request.body
        repository = (
            GitRepository.objects.select_related("team").filter(pk=int(str(pk))).first()
            if str(pk).isdigit()
            else None
        )
        signature = request.headers.get("X-Hub-Signature-256", "")
        gitlab = request.headers.get("X-Gitlab-Token", "")
        if repository is None or not webhook_signature_valid(repository, body, signature, gitlab):
            raise PermissionDenied("The webhook signature does not match.")
        if (
            request.headers.get("X-GitHub-Event", "") == "ping"
            or request.headers.get("X-Gitea-Event", "") == "ping"
        ):
            return Response({"detail": "pong"})
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        pushed = payload.get("ref") if isinstance(payload, dict) else None
        if isinstance(pushed, str) and pushed not in (
            f"refs/heads/{repository.ref}",
            f"refs/tags/{repository.ref}",
        ):
            return Response({"detail": f"Ignored: a push to {pushed[:255]}."})
        if repository.pinned_commit:
            pinned = repository.pinned_commit[:7]
            return Response({"detail": f"Ignored: pinned at {pinned} by a rollback; unpin it."})
        sync = git_sync_start(repository=repository, trigger=SyncTrigger.WEBHOOK, actor=None)
        return _queued(sync)
