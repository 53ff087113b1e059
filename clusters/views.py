"""Cluster pages. Each calls the same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import capfirst
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import require_role, teams_for, user_has_role
from clusters.agentmanifest import push_identity_steps
from clusters.choices import ClusterMode, ClusterStatus
from clusters.display import shown_counts, shown_status, with_shown_status
from clusters.eol import eol_for
from clusters.filtersets import ClusterFilterSet
from clusters.forms import ClusterMetaForm, DeregisterForm, RegisterForm, labels_text, taints_text
from clusters.models import Cluster, ClusterInventory, ClusterProvisioning
from clusters.providers.registry import get_provider
from clusters.selectors import cluster_get_or_404, cluster_list
from clusters.services.lifecycle import EDITABLE, cluster_deregister, cluster_update
from clusters.services.refresh import BOTH, COST_ONLY, cluster_probe_now, clusters_refresh_now
from clusters.services.registration import (
    ClusterFields,
    RegistrationError,
    agent_tokens_revoke,
    bootstrap_token_issue,
    cluster_register_pull,
    cluster_register_push,
    connection_from_input,
)
from kube.kubeconfig import KubeconfigError, list_contexts

PAGE_SIZE = 50
COLUMNS = [
    ("name", "Cluster"),
    ("status", "Status"),
    ("provider", "Provider"),
    ("region", "Region"),
    ("kubernetes_version", "Version"),
    ("", "End of life"),
    ("node_count", "Nodes"),
    ("", "CPU requested / allocatable"),
    ("", "Team"),
    ("last_seen_at", "Last seen"),
]
SORTABLE = (
    "name",
    "status",
    "provider",
    "region",
    "kubernetes_version",
    "node_count",
    "last_seen_at",
)
SECRET_FIELDS = ("kubeconfig", "token")


@login_required
def cluster_list_page(request: HttpRequest) -> HttpResponse:
    """The registry with filters; an htmx request gets just the table."""
    visible = cluster_list(user=request.user)
    now = timezone.now()
    shown = with_shown_status(visible.select_related("team"), now=now)
    filterset = ClusterFilterSet(request.GET or None, queryset=shown)
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else shown
    if filterset.is_bound and not filterset.is_valid():
        queryset = shown.none()
    sort = request.GET.get("sort", "name")
    if sort.lstrip("-") not in SORTABLE:
        sort = "name"
    ordering = [sort, "name"] if sort.lstrip("-") != "name" else [sort]
    page = Paginator(queryset.order_by(*ordering), PAGE_SIZE).get_page(request.GET.get("page"))
    counts = shown_counts(visible, now=now)
    query = request.GET.copy()
    query.pop("page", None)
    unsorted = query.copy()
    unsorted.pop("sort", None)
    context = {
        "filterset": filterset,
        "page": page,
        "query": query.urlencode(),
        "unsorted_query": unsorted.urlencode(),
        "columns": COLUMNS,
        "sort": sort,
        "counts": counts,
        "total": sum(n for _, n in counts),
    }
    template = "clusters/_table.html" if request.htmx else "clusters/list.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _fields(form: RegisterForm) -> ClusterFields:
    data = form.cleaned_data
    return ClusterFields.from_data(name=data["name"], team=data["team"], data=data)


def _without_secrets(form: RegisterForm) -> RegisterForm:
    """Re-render a failed form without the secrets the user typed."""
    data = form.data.copy()  # type: ignore[attr-defined]
    for field in SECRET_FIELDS:
        data[field] = ""
    form.data = data
    return form


@login_required
def cluster_register_page(request: HttpRequest) -> HttpResponse:
    teams = teams_for(request.user)
    form = RegisterForm(request.POST or None, request.FILES or None, teams=teams)
    context: dict[str, Any] = {}
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        require_role(request.user, team, Role.OPERATOR, request=request)
        data = form.cleaned_data
        try:
            if data["method"] == ClusterMode.PULL:
                cluster, token = cluster_register_pull(actor=request.user, fields=_fields(form))  # type: ignore[arg-type]
                return _token_page(request, cluster, token, status=201)
            spec, kind = connection_from_input(
                kubeconfig=data["kubeconfig"] if data["method"] == "kubeconfig" else "",
                context=data["kubeconfig_context"],
                server=data["server"] if data["method"] == "token" else "",
                token=data["token"],
                ca_data=data["ca_data"],
                insecure_skip_tls_verify=data["insecure_skip_tls_verify"],
            )
            cluster, report = cluster_register_push(
                actor=request.user,  # type: ignore[arg-type]
                fields=_fields(form),
                spec=spec,
                kind=kind,
                context=data["kubeconfig_context"],
            )
        except RegistrationError as error:
            target = error.field if error.field in form.fields else None
            form.add_error(target, error.message)
            if "push-identity-manifest" in error.message:
                hub = request.build_absolute_uri("/").rstrip("/")
                context["push_identity"] = push_identity_steps(hub)
                context["push_identity_read_only"] = push_identity_steps(hub, read_only=True)
        else:
            messages.success(request, f"Cluster {cluster.name} registered.")
            if report.read_only:
                messages.warning(
                    request,
                    "Read-only access: placement and policy enforcement will fail (missing: "
                    + ", ".join(report.missing_write)
                    + ").",
                )
            return redirect("clusters:detail", name=cluster.name)
    status = 400 if request.method == "POST" else 200
    if request.method == "POST":
        form = _without_secrets(form)
    return render(request, "clusters/register.html", {"form": form, **context}, status=status)


@login_required
@require_POST
def cluster_contexts_fragment(request: HttpRequest) -> HttpResponse:
    """htmx: the contexts of the pasted kubeconfig, to pick one (nothing is stored)."""
    text = request.POST.get("kubeconfig", "")
    upload = request.FILES.get("kubeconfig_file")
    if upload is not None and upload.size is not None and upload.size <= 1_000_000:
        text = upload.read().decode(errors="replace")
    try:
        contexts, current = list_contexts(text)
        error = ""
    except KubeconfigError as problem:
        contexts, current, error = [], "", str(problem)
    return render(
        request,
        "clusters/_contexts.html",
        {"contexts": contexts, "current": current, "error": error},
    )


def _token_page(request: HttpRequest, cluster: Cluster, token: str, status: int) -> HttpResponse:
    hub = request.build_absolute_uri("/").rstrip("/")
    command = f"python -m agent --hub {hub} --token {token}"
    response = render(
        request,
        "clusters/agent_token.html",
        {"cluster": cluster, "command": command, "token": token},
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
def cluster_detail_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    return _detail(request, cluster)


def _detail(
    request: HttpRequest,
    cluster: Cluster,
    *,
    meta_form: ClusterMetaForm | None = None,
    deregister_form: DeregisterForm | None = None,
    status: int = 200,
) -> HttpResponse:
    inventory = ClusterInventory.objects.filter(cluster=cluster).first()
    data: dict[str, Any] = inventory.data if inventory else {}
    initial = {field: getattr(cluster, field) for field in EDITABLE}
    initial["labels"], initial["taints"] = labels_text(cluster.labels), taints_text(cluster.taints)
    provisioning = ClusterProvisioning.objects.filter(cluster=cluster).first()
    now = timezone.now()
    unreachable = cluster.status == ClusterStatus.UNREACHABLE
    context = {
        "shown": shown_status(
            status=cluster.status,
            last_seen_at=cluster.last_seen_at,
            created_at=cluster.created_at,
            lifecycle=provisioning.lifecycle if provisioning else None,
            now=now,
        ),
        # Nodes, capacity and latency are what the last good probe found: say how old.
        "stale_at": cluster.last_seen_at if unreachable else None,
        "cluster": cluster,
        "provisioning": provisioning,
        "capabilities": (
            get_provider(provisioning.provider).capabilities() if provisioning else None
        ),
        "inventory": data,
        "collected_at": inventory.collected_at if inventory else None,
        "nodes": data.get("nodes", []),
        "namespaces": data.get("namespaces", []),
        "transitions": cluster.transitions.all()[:50],
        "eol": eol_for(cluster.provider, cluster.kubernetes_version),
        "today": now.date(),
        "can_operate": user_has_role(request.user, cluster.team, Role.OPERATOR),
        "can_admin": user_has_role(request.user, cluster.team, Role.ADMIN),
        "meta_form": meta_form or ClusterMetaForm(initial=initial),
        "deregister_form": deregister_form or DeregisterForm(cluster_name=cluster.name),
    }
    return render(request, "clusters/detail.html", context, status=status)


@login_required
@require_POST
def cluster_edit(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.OPERATOR, request=request, target=cluster)
    form = ClusterMetaForm(request.POST)
    if form.is_valid():
        try:
            cluster_update(cluster=cluster, actor=request.user, changes=form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Saved.")
            return redirect("clusters:detail", name=cluster.name)
    return _detail(request, cluster, meta_form=form, status=400)


@login_required
@require_POST
def cluster_deregister_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    form = DeregisterForm(request.POST, cluster_name=cluster.name)
    if form.is_valid():
        try:
            operation = cluster_deregister(
                cluster=cluster,
                actor=request.user,  # type: ignore[arg-type]
                cleanup=form.cleaned_data["cleanup"],
            )
        except ValidationError as error:
            form.add_error("cleanup", error)
        else:
            return redirect("operations:detail", operation_id=operation.pk)
    return _detail(request, cluster, deregister_form=form, status=400)


@login_required
@require_POST
def cluster_probe_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.OPERATOR, request=request, target=cluster)
    try:
        cluster_probe_now(actor=request.user, cluster=cluster, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.info(request, "Collection queued: the page updates when it lands.")
    return redirect("clusters:detail", name=cluster.name)


@login_required
@require_POST
def cluster_refresh_page(request: HttpRequest, name: str) -> HttpResponse:
    """Evaluate the team's policies on the cluster and compute this hour's cost, queued
    (cost only for a pull-mode cluster: the hub does not evaluate those)."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.OPERATOR, request=request, target=cluster)
    what = BOTH if cluster.mode == ClusterMode.PUSH else COST_ONLY
    clusters_refresh_now(
        actor=request.user, clusters=[cluster], what=what, scope="cluster", request=request
    )
    messages.success(
        request,
        f"{capfirst(what.wording)} queued for {cluster.name}: results appear when the "
        "workers finish.",
    )
    return redirect("clusters:detail", name=cluster.name)


@login_required
@require_POST
def cluster_agent_token_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    try:
        token = bootstrap_token_issue(cluster=cluster, actor=request.user)  # type: ignore[arg-type]
    except RegistrationError as error:
        messages.error(request, error.message)
        return redirect("clusters:detail", name=cluster.name)
    return _token_page(request, cluster, token, status=201)


@login_required
@require_POST
def cluster_agent_revoke_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    revoked = agent_tokens_revoke(cluster=cluster, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Agent access revoked ({revoked} tokens).")
    return redirect("clusters:detail", name=cluster.name)
