"""Team administration pages: the teams list (administrators create teams), a team's page
(its admins change its name, description and members) and the group mapping page
(administrators). Each calls the same services as the API; every change is audited there."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.api.serializers import DESCRIPTION_MAX
from accounts.choices import Role
from accounts.models import GroupMapping, Membership, Team
from accounts.permissions import (
    deny,
    is_superuser,
    require_superuser,
    teams_for,
    user_has_role,
)
from accounts.selectors import addable_user
from accounts.services import membership_remove, membership_set, team_create, team_update
from accounts.sso import group_mapping_create, group_mapping_delete, group_mapping_update


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="Lowercase letters, digits and '-'.")
    display_name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(
        max_length=DESCRIPTION_MAX, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class TeamUpdateForm(forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(
        max_length=DESCRIPTION_MAX, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class GroupMappingForm(forms.Form):
    group = forms.CharField(max_length=255, help_text="As the identity provider names it.")
    team = forms.ModelChoiceField(queryset=Team.objects.all(), to_field_name="name")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


def _actor(request: HttpRequest) -> AbstractBaseUser:
    assert isinstance(request.user, AbstractBaseUser)  # login_required ran first
    return request.user


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@login_required
def teams_page(request: HttpRequest) -> HttpResponse:
    """The teams you belong to (every team for an administrator); administrators create."""
    form = TeamCreateForm()
    status = 200
    if request.method == "POST":
        require_superuser(
            request.user, message="Only administrators can create teams.", request=request
        )
        form = TeamCreateForm(request.POST)
        if form.is_valid():
            try:
                team = team_create(actor=_actor(request), **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, _error_text(error))
            else:
                messages.success(request, f"Team {team.name} created.")
                return redirect("accounts:team", name=team.name)
        status = 400
    teams = teams_for(request.user).prefetch_related("memberships")
    return render(
        request,
        "accounts/teams.html",
        {"teams": teams, "form": form, "can_create": is_superuser(request.user)},
        status=status,
    )


def _member_post(request: HttpRequest, team: Team, do: str) -> str | None:
    """Apply one member change; the error to show, or None."""
    if do == "add":
        form = MemberForm(request.POST)
        if not form.is_valid():
            return "Give a user name and a role."
        user = addable_user(actor=request.user, username=form.cleaned_data["username"])
        if user is None:
            return (
                "No user you can add has this name: a team admin adds people who already "
                "share a team with them; an administrator adds anyone."
            )
        membership_set(
            team=team, user=user, role=Role(form.cleaned_data["role"]), actor=_actor(request)
        )
        messages.success(request, f"{user.get_username()} is now {form.cleaned_data['role']}.")
        return None
    membership = (
        Membership.objects.select_related("user")
        .filter(team=team, user__username=str(request.POST.get("username", "")))
        .first()
    )
    if membership is None:
        return "No such member."
    if do == "remove":
        membership_remove(team=team, user=membership.user, actor=_actor(request))
        messages.success(request, f"{membership.user.get_username()} removed.")
        return None
    role = str(request.POST.get("role", ""))
    if role not in Role.values:
        return "Choose viewer, operator or admin."
    membership_set(team=team, user=membership.user, role=Role(role), actor=_actor(request))
    messages.success(request, f"{membership.user.get_username()} is now {role}.")
    return None


@login_required
def team_page(request: HttpRequest, name: str) -> HttpResponse:
    """A team: its members with their role, source (local or identity provider) and last
    login. Its admins change the team and its hand-made members."""
    team = teams_for(request.user).filter(name=name).first()
    if team is None:
        raise Http404("No such team.")
    is_admin = user_has_role(request.user, team, Role.ADMIN)
    update_form = TeamUpdateForm(
        initial={"display_name": team.display_name, "description": team.description}
    )
    error: str | None = None
    if request.method == "POST":
        if not is_admin:
            deny("Only a team admin can change the team.", request=request, target=team)
        do = str(request.POST.get("do", ""))
        try:
            if do == "update":
                update_form = TeamUpdateForm(request.POST)
                if update_form.is_valid():
                    team_update(team=team, actor=_actor(request), **update_form.cleaned_data)
                    messages.success(request, "Team saved.")
                else:
                    error = "Check the display name and description."
            elif do in ("add", "role", "remove"):
                error = _member_post(request, team, do)
            else:
                error = "Unknown action."
        except ValidationError as refused:
            error = _error_text(refused)
        if error is None:
            return redirect("accounts:team", name=team.name)
    memberships = team.memberships.select_related("user").order_by("user__username")
    return render(
        request,
        "accounts/team.html",
        {
            "team": team,
            "memberships": memberships,
            "is_admin": is_admin,
            "update_form": update_form,
            "member_form": MemberForm(),
            "roles": Role.choices,
            "error": error,
            "mapped": team.group_mappings.exists(),
        },
        status=400 if error else 200,
    )


@login_required
def group_mappings_page(request: HttpRequest) -> HttpResponse:
    """Administrators: which identity provider group gives which role in which team."""
    require_superuser(
        request.user, message="Only administrators manage group mapping.", request=request
    )
    form = GroupMappingForm()
    error: str | None = None
    if request.method == "POST":
        do = str(request.POST.get("do", ""))
        try:
            if do == "create":
                form = GroupMappingForm(request.POST)
                if form.is_valid():
                    group_mapping_create(actor=_actor(request), **form.cleaned_data)
                    messages.success(
                        request, "Rule added; it applies at each member's next sign-in."
                    )
                else:
                    error = "Check the group, team and role."
            else:
                mapping = _mapping(request)
                if mapping is None:
                    error = "No such rule."
                elif do == "delete":
                    group_mapping_delete(mapping=mapping, actor=_actor(request))
                    messages.success(
                        request, "Rule removed; members lose its role at their next sign-in."
                    )
                elif do == "role":
                    group_mapping_update(
                        mapping=mapping,
                        role=str(request.POST.get("role", "")),
                        actor=_actor(request),
                    )
                    messages.success(request, "Rule changed.")
                else:
                    error = "Unknown action."
        except ValidationError as refused:
            error = _error_text(refused)
        if error is None:
            return redirect("accounts:group-mappings")
    context: dict[str, Any] = {
        "mappings": GroupMapping.objects.select_related("team"),
        "form": form,
        "roles": Role.choices,
        "error": error,
    }
    return render(request, "accounts/group_mappings.html", context, status=400 if error else 200)


def _mapping(request: HttpRequest) -> GroupMapping | None:
    mapping_id = str(request.POST.get("mapping", ""))
    if not mapping_id.isdigit():
        return None
    return GroupMapping.objects.select_related("team").filter(pk=int(mapping_id)).first()
