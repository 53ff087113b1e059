"""Policy pages: list with fleet-wide compliance, detail with per-cluster results and
violations, the editor (with validation and impact preview). Same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, teams_for, user_has_role
from clusters.selectors import cluster_get_or_404
from core.managed import refuse_page_if_managed
from core.ui.filters import any_by_default
from policies.choices import ResultStatus
from policies.external.guard import refuse_external
from policies.filtersets import PolicyFilterSet
from policies.forms import PolicyForm
from policies.models import ClusterSetPin, Policy, PolicyClusterMode
from policies.selectors import compliance_summary, latest_evaluations, percent, policy_list
from policies.services.cluster_modes import mode_with
from policies.services.enforcement import enforcement_preview
from policies.services.evaluation import policy_evaluate
from policies.services.evaluation.versions import follows_set_pin
from policies.services.policies import PolicySpec, policy_create, policy_update

HISTORY = 50


def _policy_or_404(request: HttpRequest, team: str, name: str) -> Policy:
    policy = (
        policy_list(user=request.user)
        .select_related("team")
        .prefetch_related("rules", "cluster_sets")
        .filter(team__name=team, name=name)
        .first()
    )
    if policy is None:
        raise Http404("No such policy.")
    return policy


@login_required
def policy_list_page(request: HttpRequest) -> HttpResponse:
    visible = policy_list(user=request.user).select_related("team")
    filterset = PolicyFilterSet(request.GET or None, queryset=visible)
    any_by_default(filterset.form)
    policies = filterset.qs if filterset.is_bound and filterset.is_valid() else visible
    summary = compliance_summary(policies)
    rows = [
        {"policy": policy, "counts": summary.policies.get(policy.pk)}
        for policy in policies.order_by("team__name", "name")
    ]
    return render(
        request,
        "policies/list.html",
        {"rows": rows, "summary": summary, "filterset": filterset},
    )


@login_required
def policy_detail_page(request: HttpRequest, team: str, name: str) -> HttpResponse:
    policy = _policy_or_404(request, team, name)
    latest = sorted(
        latest_evaluations(Policy.objects.filter(pk=policy.pk)).select_related("cluster", "policy"),
        key=lambda row: row.cluster_label,
    )
    history = policy.evaluations.select_related("cluster", "policy")[:HISTORY]
    overrides = list(
        policy.cluster_modes.select_related("cluster", "set_by").order_by("cluster__name")
    )
    by_cluster: dict[int | None, PolicyClusterMode] = {o.cluster_id: o for o in overrides}
    context = {
        "policy": policy,
        # Each row with the policy's mode on its cluster (an override wins: cluster_modes).
        "latest": [(row, mode_with(policy, by_cluster.get(row.cluster_id))) for row in latest],
        "cluster_modes": overrides,
        "history": history,
        "actions": policy.actions.select_related("cluster")[:HISTORY],
        "can_operate": user_has_role(request.user, policy.team, Role.OPERATOR),
        # Cluster sets that pin another version, for a PSS policy that follows their pins.
        "set_pins": (
            ClusterSetPin.objects.filter(cluster_set__team_id=policy.team_id)
            .select_related("cluster_set")
            .order_by("cluster_set__name")
            if follows_set_pin(policy)
            else []
        ),
    }
    return render(request, "policies/detail.html", context)


def _form_errors(form: PolicyForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


def _refused(
    request: HttpRequest, form: PolicyForm, policy: Policy | None, error: PermissionDenied
) -> HttpResponse:
    """A save the user's role does not allow (enforce mode): the form again, with why, 403."""
    form.add_error("mode", str(error))
    context = {"form": form, "policy": policy}
    return render(request, "policies/edit.html", context, status=403)


def _refused_external(request: HttpRequest, policy: Policy) -> bool:
    """An external policy is read-only: say so instead of editing or evaluating it."""
    try:
        refuse_external(policy)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return True
    return False


def _operator_teams(request: HttpRequest) -> list[str]:
    return [team.name for team in teams_for(request.user, "operate")]


@login_required
def policy_create_page(request: HttpRequest) -> HttpResponse:
    teams = _operator_teams(request)
    if not teams:
        require_role(request.user, None, Role.OPERATOR, request=request)
    form = PolicyForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        team = Team.objects.get(name=form.cleaned_data["team"])
        try:
            policy = policy_create(team=team, spec=form.spec(), actor=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            _form_errors(form, error)
        except PermissionDenied as error:
            return _refused(request, form, None, error)
        else:
            messages.success(request, f"Policy {policy.name} created.")
            return redirect("policies:detail", team=team.name, name=policy.name)
    return render(request, "policies/edit.html", {"form": form, "policy": None})


@login_required
def policy_edit_page(request: HttpRequest, team: str, name: str) -> HttpResponse:
    policy = _policy_or_404(request, team, name)
    require_role(request.user, policy.team, Role.OPERATOR, request=request, target=policy)
    if _refused_external(request, policy):
        return redirect("policies:detail", team=policy.team.name, name=policy.name)
    initial = PolicyForm.initial_for(PolicySpec.of(policy), policy.team.name)
    data: Any = None
    if request.method == "POST":
        refuse_page_if_managed(policy)
        data = request.POST.copy()
        data["team"], data["name"] = policy.team.name, policy.name
    form = PolicyForm(data, initial=initial, teams=[policy.team.name], editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            policy_update(policy=policy, spec=form.spec(), actor=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            _form_errors(form, error)
        except PermissionDenied as error:
            return _refused(request, form, policy, error)
        else:
            messages.success(request, f"Policy {policy.name} saved.")
            return redirect("policies:detail", team=policy.team.name, name=policy.name)
    return render(request, "policies/edit.html", {"form": form, "policy": policy})


@login_required
@require_POST
def policy_evaluate_page(request: HttpRequest, team: str, name: str) -> HttpResponse:
    policy = _policy_or_404(request, team, name)
    require_role(request.user, policy.team, Role.OPERATOR, request=request, target=policy)
    if _refused_external(request, policy):
        return redirect("policies:detail", team=policy.team.name, name=policy.name)
    done = policy_evaluate(policy=policy)
    if done.queued:
        messages.success(request, f"Evaluation queued on {done.queued} clusters.")
    else:
        messages.success(request, f"Evaluated on {len(done.results)} cluster(s).")
    return redirect("policies:detail", team=policy.team.name, name=policy.name)


@login_required
@require_POST
def policy_preview_page(request: HttpRequest, team: str, name: str) -> HttpResponse:
    """The impact preview: what enforce would apply and delete (nothing is changed)."""
    policy = _policy_or_404(request, team, name)
    require_role(request.user, policy.team, Role.OPERATOR, request=request, target=policy)
    if _refused_external(request, policy):
        return redirect("policies:detail", team=policy.team.name, name=policy.name)
    plans = enforcement_preview(policy=policy)
    return render(request, "policies/preview.html", {"policy": policy, "plans": plans})


@login_required
def cluster_compliance_fragment(request: HttpRequest, name: str) -> HttpResponse:
    """The cluster page's compliance card (loaded by htmx): the newest result of each
    policy the user can see on this cluster."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    rows = sorted(
        latest_evaluations(policy_list(user=request.user).filter(team_id=cluster.team_id))
        .filter(cluster=cluster)
        .select_related("policy__team"),
        key=lambda row: (row.status == ResultStatus.COMPLIANT, row.policy.name),
    )
    counts = {status: sum(1 for r in rows if r.status == status) for status in ResultStatus.values}
    return render(
        request,
        "policies/_cluster.html",
        {
            "cluster": cluster,
            "rows": rows,
            "counts": counts,
            "percent": percent(counts["compliant"], counts["noncompliant"]),
        },
    )
