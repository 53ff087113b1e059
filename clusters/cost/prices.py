"""Loading the shipped list prices (idempotent: changed prices get a new dated row)."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone

from clusters.cost.models import InstancePrice
from clusters.cost.pricelist import list_prices


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
