"""Pages for clusters Keelson builds: the create form and lifecycle buttons."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import require_role, teams_for
from clusters.forms import CreateClusterForm
from clusters.providers.base import ClusterSpec
from clusters.providers.catalog import INSTANCE_TYPES
from clusters.selectors import cluster_get_or_404, cluster_list
from clusters.services.provisioning import (
    cluster_create,
    cluster_destroy,
    cluster_pool_update,
    cluster_scale,
    cluster_upgrade,
)
from operations.models import Operation


def _form_error(form: CreateClusterForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            target = field if field in form.fields else None
            if field == "params":
                target = None
            for message in messages:
                form.add_error(target, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


@login_required
def cluster_create_page(request: HttpRequest) -> HttpResponse:
    form = CreateClusterForm(request.POST or None, teams=teams_for(request.user))
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        require_role(request.user, team, Role.OPERATOR, request=request)
        try:
            spec = ClusterSpec.from_json(form.spec_data())
            operation = cluster_create(
                actor=request.user,  # type: ignore[arg-type]
                team=team,
                name=form.cleaned_data["name"],
                spec=spec,
                labels=form.cleaned_data["labels"],
                environment=form.cleaned_data["environment"],
            )
        except ValidationError as error:
            _form_error(form, error)
        else:
            return redirect("operations:detail", operation_id=operation.pk)
    context = {
        "form": form,
        "instance_types": sorted(INSTANCE_TYPES.values(), key=lambda t: t.name),
        "management_clusters": cluster_list(user=request.user).values_list("name", flat=True),
    }
    return render(
        request,
        "clusters/create.html",
        context,
        status=400 if request.method == "POST" else 200,
    )


def _lifecycle_redirect(request: HttpRequest, name: str, start: object) -> HttpResponse:
    try:
        operation = start()  # type: ignore[operator]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("clusters:detail", name=name)
    assert isinstance(operation, Operation)
    return redirect("operations:detail", operation_id=operation.pk)


@login_required
@require_POST
def cluster_scale_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.OPERATOR, request=request, target=cluster)
    pool = request.POST.get("pool", "")
    raw = request.POST.get("count", "")
    if not raw.isdigit():
        messages.error(request, "The node count must be a whole number.")
        return redirect("clusters:detail", name=name)
    return _lifecycle_redirect(
        request,
        name,
        lambda: cluster_scale(actor=request.user, cluster=cluster, pool=pool, count=int(raw)),  # type: ignore[arg-type]
    )


@login_required
@require_POST
def cluster_upgrade_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    version = request.POST.get("kubernetes_version", "").strip()
    return _lifecycle_redirect(
        request,
        name,
        lambda: cluster_upgrade(actor=request.user, cluster=cluster, version=version),  # type: ignore[arg-type]
    )


@login_required
@require_POST
def cluster_update_pool_page(request: HttpRequest, name: str) -> HttpResponse:
    """The pool's row sends all three values, prefilled: empty image or version means the
    default image, the cluster's version."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    values = {
        field: request.POST.get(field, "").strip()
        for field in ("image", "instance_type", "version")
    }
    return _lifecycle_redirect(
        request,
        name,
        lambda: cluster_pool_update(
            actor=request.user,  # type: ignore[arg-type]
            cluster=cluster,
            pool=request.POST.get("pool", ""),
            image=values["image"],
            instance_type=values["instance_type"] or None,
            version=values["version"],
        ),
    )


@login_required
@require_POST
def cluster_destroy_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    if request.POST.get("confirm", "").strip() != cluster.name:
        messages.error(request, "Type the cluster's name to confirm its deletion.")
        return redirect("clusters:detail", name=name)
    return _lifecycle_redirect(
        request,
        name,
        lambda: cluster_destroy(actor=request.user, cluster=cluster),  # type: ignore[arg-type]
    )
