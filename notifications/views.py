"""Pages: the channels (add, change, send a test, delete) and the deliveries with the
dead letters and their "Retry" button. Every write goes through notifications.services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, restrict, teams_for, visible_team_ids
from notifications.choices import DeliveryState
from notifications.forms import ChannelForm
from notifications.models import Channel, Delivery
from notifications.services import channel_delete, channel_save, channel_send_test, delivery_retry

PAGE_ROWS = 100


def _form_errors(form: ChannelForm, error: ValidationError) -> None:
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


def _channel(request: HttpRequest, pk: int) -> Channel:
    channel = (
        restrict(Channel.objects.select_related("team"), request.user, "view").filter(pk=pk).first()
    )
    if channel is None:
        raise Http404("No such channel.")
    return channel


@login_required
def channels_page(request: HttpRequest) -> HttpResponse:
    teams = [team.name for team in teams_for(request.user, "admin")]
    form = ChannelForm(request.POST or None, teams=teams)
    if request.method == "POST":
        if not teams:
            require_role(request.user, None, Role.ADMIN, request=request)
        if form.is_valid():
            team = Team.objects.get(name=form.cleaned_data["team"])
            try:
                channel = channel_save(team=team, spec=form.spec(), actor=request.user)  # type: ignore[arg-type]
            except ValidationError as error:
                _form_errors(form, error)
            else:
                messages.success(request, f"Channel {channel.name} added.")
                return redirect("notifications:channels")
    channels = restrict(Channel.objects.select_related("team"), request.user, "view")
    context = {
        "form": form,
        "channels": channels,
        "can_add": bool(teams),
        "admin_teams": set(visible_team_ids(request.user, Role.ADMIN)),
        "operator_teams": set(visible_team_ids(request.user, Role.OPERATOR)),
        "dead": restrict(
            Delivery.objects.filter(state=DeliveryState.DEAD), request.user, "view"
        ).count(),
    }
    return render(request, "notifications/channels.html", context)


@login_required
def channel_edit_page(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    require_role(
        request.user,
        channel.team,
        Role.ADMIN,
        doing="change channels",
        request=request,
        target=channel,
    )
    form = ChannelForm(request.POST or None, teams=[channel.team.name], channel=channel)
    if request.method == "POST" and form.is_valid():
        try:
            channel_save(team=channel.team, spec=form.spec(), actor=request.user, channel=channel)  # type: ignore[arg-type]
        except ValidationError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Channel {channel.name} saved.")
            return redirect("notifications:channels")
    return render(request, "notifications/channel_edit.html", {"form": form, "channel": channel})


@login_required
@require_POST
def channel_test_page(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    require_role(
        request.user,
        channel.team,
        Role.OPERATOR,
        doing="send test notifications",
        request=request,
        target=channel,
    )
    delivery = channel_send_test(channel=channel, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Test notification queued (delivery {delivery.pk}).")
    return redirect(f"{reverse('notifications:deliveries')}?channel={channel.pk}")


@login_required
@require_POST
def channel_delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    require_role(
        request.user,
        channel.team,
        Role.ADMIN,
        doing="delete channels",
        request=request,
        target=channel,
    )
    channel_delete(channel=channel, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Channel {channel.name} deleted.")
    return redirect("notifications:channels")


@login_required
def deliveries_page(request: HttpRequest) -> HttpResponse:
    query = restrict(Delivery.objects.select_related("team", "channel"), request.user, "view")
    state = request.GET.get("state", "")
    if state in DeliveryState.values:
        query = query.filter(state=state)
    else:
        state = ""
    channel = request.GET.get("channel", "")
    if channel.isdigit():
        query = query.filter(channel_id=int(channel))
    else:
        channel = ""
    context = {
        "deliveries": query[:PAGE_ROWS],
        "state": state,
        "channel": channel,
        "states": DeliveryState.choices,
        "operator_teams": set(visible_team_ids(request.user, Role.OPERATOR)),
    }
    return render(request, "notifications/deliveries.html", context)


@login_required
@require_POST
def delivery_retry_page(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = (
        restrict(Delivery.objects.select_related("team"), request.user, "view")
        .filter(pk=pk)
        .first()
    )
    if delivery is None:
        raise Http404("No such delivery.")
    require_role(
        request.user,
        delivery.team,
        Role.OPERATOR,
        doing="retry deliveries",
        request=request,
        target=delivery,
    )
    try:
        delivery_retry(delivery=delivery, actor=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Delivery {delivery.pk} queued again.")
    return redirect(f"{reverse('notifications:deliveries')}?state=dead")
