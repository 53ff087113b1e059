"""Cost pages: the explorer (group-by, filters, period, chart, table, CSV) and chargeback."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, restrict, teams_for, user_has_role
from clusters.selectors import cluster_get_or_404
from clusters.services.refresh import user_operates_any
from core.managed import refuse_page_if_managed
from costs.api import period_bounds, rollup_for
from costs.budgets import budget_create, budget_delete
from costs.models import Budget, ClusterPricing, RateCard
from costs.prices import managed_rate_card, rate_card_save
from costs.rollups import GROUPS, cost_rollup
from costs.services import budget_status, cluster_pricing_set

TOP = 6


class PricingForm(forms.Form):
    valid_from = forms.DateField(initial=lambda: timezone.now().date())
    discount_percent = forms.DecimalField(min_value=0, max_value=100, initial=0)
    # Off the GPUs' part (the discount above is off CPU and RAM only, as OpenCost's).
    gpu_discount_percent = forms.DecimalField(min_value=0, max_value=100, initial=0, required=False)
    spot = forms.BooleanField(required=False)
    spot_discount_percent = forms.DecimalField(min_value=0, max_value=100, initial=60)
    rate_card = forms.CharField(max_length=63, required=False)
    control_plane_monthly = forms.DecimalField(min_value=0, required=False)
    storage_gb_month = forms.DecimalField(min_value=0, required=False)
    share_idle = forms.BooleanField(required=False)


def _chart(request: HttpRequest, params: dict[str, str], top: list[str]) -> dict[str, Any]:
    """Daily series of the biggest groups, for uPlot: {days: [...], series: {group: [...]}}."""
    rows = rollup_for(request, {**params, "period": "day"})[0].rows
    days = sorted({row["period"].date().isoformat() for row in rows})
    column = {day: index for index, day in enumerate(days)}
    shown = set(top)
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(days))
    for row in rows:
        name = row["group"] if row["group"] in shown else "other"
        series[name][column[row["period"].date().isoformat()]] += float(row["total_cost"])
    return {"days": days, "series": dict(series), "currency": settings.KEELSON_CURRENCY}


@login_required
def cost_explorer(request: HttpRequest) -> HttpResponse:
    params: dict[str, str] = {key: str(value) for key, value in request.GET.items() if value}
    params.setdefault("group_by", "cluster")
    params.setdefault("range", "this-month")
    error = ""
    rows: list[dict[str, Any]] = []
    total = Decimal(0)
    chart: dict[str, Any] = {"days": [], "series": {}}
    try:
        rollup, since, until = rollup_for(request, params)
        rows, total = rollup.rows, rollup.total
        chart = _chart(request, params, [row["group"] for row in rows[:TOP]])
    except ValidationError as problem:
        error = " ".join(str(m) for messages in problem.detail.values() for m in messages)  # type: ignore[union-attr]
        since, until = period_bounds({"range": "this-month"})
    query = "&".join(f"{k}={v}" for k, v in params.items())
    budgets = restrict(Budget.objects.select_related("team"), request.user, "view")
    admin_teams = [team.name for team in teams_for(request.user, "admin")]
    context = {
        "admin_teams": admin_teams,
        "can_refresh": user_operates_any(user=request.user),
        "params": params,
        "groups": [*GROUPS, "label:env"],
        "rows": rows,
        "total": total,
        "since": since,
        "until": until - timedelta(hours=1) if until > since else until,
        "chart": chart,
        "error": error,
        "csv_url": f"/api/v1/costs/?{query}&export=csv",
        "budgets": [(budget, budget_status(budget)) for budget in budgets[:20]],
    }
    return render(request, "cost/explorer.html", context, status=400 if error else 200)


@login_required
def cost_chargeback(request: HttpRequest) -> HttpResponse:
    """What each team's clusters cost, by month (the last three)."""
    params = {"group_by": "team", "period": "month", "range": "30d"}
    since, until = period_bounds({"range": "this-month"})
    since = (since - timedelta(days=62)).replace(day=1)
    rows = rollup_for(request, {**params, "since": since.isoformat(), "until": until.isoformat()})[
        0
    ].rows
    months = sorted({row["period"].date() for row in rows}, reverse=True)
    table: dict[str, dict[Any, Decimal]] = defaultdict(dict)
    for row in rows:
        table[row["group"]][row["period"].date()] = row["total_cost"]
    teams = sorted(table, key=lambda team: -sum(table[team].values()))
    context = {
        "months": months,
        "teams": [(team, [table[team].get(m, Decimal(0)) for m in months]) for team in teams],
    }
    return render(request, "cost/chargeback.html", context)


@login_required
def cluster_cost_fragment(request: HttpRequest, name: str) -> HttpResponse:
    """The cluster page's cost card (loaded by htmx): this month by namespace, pricing."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    month_start, month_end = period_bounds({"range": "this-month"})
    cost = cost_rollup(
        user=request.user,
        since=month_start,
        until=month_end,
        group_by="namespace",
        filters={"cluster": cluster.name},
    )
    context = {
        "cluster": cluster,
        "pricing": ClusterPricing.objects.filter(cluster=cluster).order_by("-valid_from")[:5],
        "today": timezone.now().date(),
        "cost_rows": cost.rows[:10],
        "cost_total": cost.total,
        "can_admin": user_has_role(request.user, cluster.team, Role.ADMIN),
    }
    return render(request, "cost/_cluster.html", context)


@login_required
@require_POST
def cluster_pricing_page(request: HttpRequest, name: str) -> HttpResponse:
    """The cluster page's pricing form (admin): same service as the API."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    require_role(request.user, cluster.team, Role.ADMIN, request=request, target=cluster)
    form = PricingForm(request.POST)
    if form.is_valid():
        data = dict(form.cleaned_data)
        valid_from = data.pop("valid_from")
        try:
            cluster_pricing_set(
                actor=request.user,
                cluster=cluster,
                valid_from=valid_from,
                created_by=request.user,
                **data,
            )
        except DjangoValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Pricing set from {valid_from}.")
    else:
        messages.error(
            request,
            " ".join(f"{field}: {e}" for field, errors in form.errors.items() for e in errors),
        )
    return redirect("clusters:detail", name=cluster.name)


class RateCardForm(forms.Form):
    name = forms.SlugField(max_length=63)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="name")
    valid_from = forms.DateField(initial=lambda: timezone.now().date())
    cpu_core_hour = forms.DecimalField(min_value=0, decimal_places=6)
    ram_gb_hour = forms.DecimalField(min_value=0, decimal_places=6)
    gpu_hour = forms.DecimalField(min_value=0, decimal_places=6, initial=0)
    storage_gb_month = forms.DecimalField(min_value=0, decimal_places=6, initial=0)
    instance_prices = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "onprem.medium=0.21"}),
        required=False,
        help_text="Optional: instance-type=hourly price, one per line.",
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]

    def clean_instance_prices(self) -> dict[str, str]:
        prices = {}
        for number, line in enumerate(self.cleaned_data["instance_prices"].splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            try:
                if not sep or Decimal(value.strip()) < 0:
                    raise ArithmeticError
            except ArithmeticError:
                raise forms.ValidationError(f"Line {number}: write instance-type=price.") from None
            prices[key.strip()] = value.strip()
        return prices


@login_required
def rate_cards_page(request: HttpRequest) -> HttpResponse:
    """Rate cards (custom prices); saving one with a later date adds a version."""
    teams = teams_for(request.user)
    form = RateCardForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        require_role(request.user, data["team"], Role.ADMIN, request=request)
        refuse_page_if_managed(managed_rate_card(data["name"]))
        try:
            rate_card_save(actor=request.user, **data)
        except DjangoValidationError as error:
            for field, errors in error.message_dict.items():
                for message in errors:
                    form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(request, "Rate card saved.")
            return redirect("cost:rate-cards")
    cards = restrict(RateCard.objects.select_related("team"), request.user, "view")
    return render(
        request,
        "cost/rate_cards.html",
        {"form": form, "cards": cards},
        status=400 if request.method == "POST" else 200,
    )


def _budget_team(request: HttpRequest, name: str) -> Team:
    """The team named in the form, if the user administers it (else 403, audited)."""
    team = teams_for(request.user).filter(name=name).first()
    require_role(request.user, team, Role.ADMIN, request=request)
    assert team is not None  # require_role refuses a missing team
    return team


@login_required
@require_POST
def budget_create_page(request: HttpRequest) -> HttpResponse:
    team = _budget_team(request, request.POST.get("team", ""))
    try:
        budget = budget_create(
            actor=request.user,  # type: ignore[arg-type]
            team=team,
            name=request.POST.get("name", ""),
            monthly_amount=request.POST.get("monthly_amount", ""),
            cluster_set=request.POST.get("cluster_set", "").strip(),
        )
    except DjangoValidationError as error:
        for field, problems in error.message_dict.items():
            for problem in problems:
                messages.error(request, f"{field.replace('_', ' ')}: {problem}")
    else:
        messages.success(request, f"Budget {budget.name} created.")
    return redirect(f"{reverse('cost:explorer')}#budgets")


@login_required
@require_POST
def budget_delete_page(request: HttpRequest, name: str) -> HttpResponse:
    budgets = restrict(Budget.objects.select_related("team"), request.user, "view")
    budget = budgets.filter(name=name).first()
    if budget is None:
        raise Http404("No such budget.")
    require_role(request.user, budget.team, Role.ADMIN, request=request, target=budget)
    refuse_page_if_managed(budget)
    budget_delete(actor=request.user, budget=budget)  # type: ignore[arg-type]
    messages.success(request, f"Budget {name} deleted.")
    return redirect(f"{reverse('cost:explorer')}#budgets")
