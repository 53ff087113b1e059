"""Loading the shipped list prices (idempotent: changed prices get a new dated row)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from audit.services import audit_record
from costs.models import ClusterPricing, InstancePrice, RateCard
from costs.pricelist import list_prices


@transaction.atomic
def prices_load(*, valid_from: date | None = None) -> int:
    """Insert list prices that differ from the current ones, valid from `valid_from`
    (today by default): history is kept, nothing is rewritten."""
    day = valid_from or timezone.now().date()
    added = 0
    for provider, region, instance_type, hourly in list_prices():
        current = (
            InstancePrice.objects.filter(
                provider=provider, region=region, instance_type=instance_type, valid_from__lte=day
            )
            .order_by("-valid_from")
            .values_list("hourly", flat=True)
            .first()
        )
        if current is not None and current == hourly:
            continue
        InstancePrice.objects.update_or_create(
            provider=provider,
            region=region,
            instance_type=instance_type,
            valid_from=day,
            defaults={"hourly": hourly},
        )
        added += 1
    return added


def _not_past(valid_from: date) -> None:
    if valid_from < timezone.now().date():
        raise ValidationError(
            {"valid_from": "Prices change from today or later, never in the past."}
        )


MAX_HOURLY = Decimal(100_000)  # per instance-hour: far above any cloud's largest machine
MAX_INSTANCE_PRICES = 1_000


def instance_prices_clean(value: Any) -> dict[str, str]:
    """A rate card's instance prices: type -> hourly price, each a finite number from 0 to
    MAX_HOURLY (`1e400`, `Infinity` or `NaN` would make every cost of the hour fail)."""
    if not isinstance(value, dict) or len(value) > MAX_INSTANCE_PRICES:
        raise ValidationError(
            {"instance_prices": f"Map up to {MAX_INSTANCE_PRICES:,} instance types to prices."}
        )
    cleaned: dict[str, str] = {}
    for key, price in value.items():
        try:
            amount = Decimal(str(price).strip())
        except (InvalidOperation, ValueError):
            amount = Decimal("NaN")
        valid = amount.is_finite() and 0 <= amount <= MAX_HOURLY
        if not isinstance(key, str) or not 0 < len(key.strip()) <= 100 or not valid:
            raise ValidationError(
                {
                    "instance_prices": f"{str(key)[:100]}: the hourly price must be a number "
                    f"from 0 to {MAX_HOURLY:,}."
                }
            )
        cleaned[key.strip()] = format(amount, "f")
    return cleaned


@transaction.atomic
def rate_card_save(
    *, actor: Any, team: Team, name: str, valid_from: date, **prices: Any
) -> RateCard:
    """Add a rate card or a new version of one (from today or later: never retroactive)."""
    _not_past(valid_from)
    if "instance_prices" in prices:
        prices["instance_prices"] = instance_prices_clean(prices["instance_prices"])
    if RateCard.objects.filter(name=name).exclude(team=team).exists():
        raise ValidationError({"name": "Another team uses this rate card name."})
    card, _ = RateCard.objects.update_or_create(
        name=name, valid_from=valid_from, defaults={"team": team, **prices}
    )
    audit_record(
        actor=actor,
        action="ratecard.save",
        target=card,
        team=team,
        detail={"valid_from": str(valid_from), **{k: str(v) for k, v in prices.items()}},
    )
    return card


@transaction.atomic
def instance_price_add(
    *, actor: Any, provider: str, region: str, instance_type: str, hourly: Decimal, valid_from: date
) -> InstancePrice:
    """Override a list price from a date on (today or later)."""
    _not_past(valid_from)
    price, _ = InstancePrice.objects.update_or_create(
        provider=provider,
        region=region,
        instance_type=instance_type,
        valid_from=valid_from,
        defaults={"hourly": hourly},
    )
    audit_record(
        actor=actor,
        action="instanceprice.add",
        target=price,
        detail={"hourly": str(hourly), "valid_from": str(valid_from)},
    )
    return price


def managed_rate_card(name: str) -> RateCard | None:
    """A version of the rate card that a Git repository declares, if one does."""
    return RateCard.objects.filter(name=name, managed_by__isnull=False).first()


@transaction.atomic
def rate_card_delete(*, actor: Any, team: Team, name: str, valid_from: date | None = None) -> int:
    """Delete a team's rate card, every version (refused while cluster pricing names it), or
    with `valid_from` one version not yet in effect: prices in effect or past are history.
    How many versions went."""
    versions = RateCard.objects.filter(team=team, name=name)
    if valid_from is not None:
        if valid_from <= timezone.now().date():
            raise ValidationError(
                {
                    "valid_from": f"The version of {valid_from} is in effect or past; "
                    "add a later one."
                }
            )
        versions = versions.filter(valid_from=valid_from)
    else:
        users = ClusterPricing.objects.filter(cluster__team=team, rate_card=name)
        clusters = sorted(set(users.values_list("cluster__name", flat=True)))
        if clusters:
            raise ValidationError(
                {"name": f"Cluster pricing of {', '.join(clusters[:5])} uses rate card {name}."}
            )
    card = versions.first()
    if card is None:
        return 0
    audit_record(
        actor=actor,
        action="ratecard.delete",
        target=card,
        team=team,
        detail={"name": name, "valid_from": str(valid_from) if valid_from else "all"},
    )
    deleted, _ = versions.delete()
    return deleted
