"""Which prices apply to a cluster on a given day (effective-dated, never retroactive)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from clusters.models import Cluster
from costs.allocation import SHARE_NONE, ShareIdle, Weights
from costs.control_plane import managed_service
from costs.models import ClusterPricing, InstancePrice, RateCard
from costs.pricelist import CONTROL_PLANE_MONTHLY, HOURS_PER_MONTH, STORAGE_CLASS_GB_MONTH
from costs.sharing import ShareSplit

DEFAULT_STORAGE_GB_MONTH = Decimal("0.10")
HUNDRED = Decimal(100)
# Spot capacity's discount on the on-demand price when the cluster's pricing states none
# (ClusterPricing.spot_discount_percent's default).
DEFAULT_SPOT_DISCOUNT_PERCENT = Decimal(60)


def _stored_price(value: Any) -> Decimal | None:
    """A rate card's stored instance price, or None where it is missing or not a finite,
    non-negative number (saved before rate_card_save checked it): priced by resources."""
    if value is None:
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        return None
    return price if price.is_finite() and price >= 0 else None


@dataclass(frozen=True)
class ResolvedPricing:
    weights: Weights
    rate_card: RateCard | None
    pricing: ClusterPricing | None
    multiplier: Decimal  # a node's price after the cluster-wide spot flag
    control_plane_hourly: Decimal
    storage_gb_hour: Decimal
    share_idle: ShareIdle = SHARE_NONE
    # Per storage class (list prices); empty when a cluster or card price applies to all.
    storage_class_gb_hour: dict[str, Decimal] = field(default_factory=dict)
    # What a node labelled spot pays of its price (1 - the spot discount). The cluster-wide
    # `spot` flag already sits in `multiplier`: a spot node is not discounted twice.
    spot_multiplier: Decimal = Decimal(1)
    shared_namespaces: frozenset[str] = frozenset()
    shared_overhead_hourly: Decimal = Decimal(0)
    share_split: ShareSplit = "weighted"
    # What is paid of a node's CPU and RAM part, and of its GPU part (1 - each discount).
    cpu_ram_factor: Decimal = Decimal(1)
    gpu_factor: Decimal = Decimal(1)

    def volume_gb_hour(self, storage_class: str) -> Decimal:
        """The price of a GB-hour of a bound volume of `storage_class`."""
        return self.storage_class_gb_hour.get(storage_class, self.storage_gb_hour)

    def node_weights(self, instance_type: str) -> Weights:
        """How a node's price splits into CPU, RAM and GPU. A node priced by resource from a
        rate card splits by exactly those prices: a card without a GPU price prices GPUs at
        0, so they get no share (a default GPU weight would move most of the node's price
        onto its GPU pods and understate idle)."""
        card = self.rate_card
        by_resource = card is not None and instance_type not in card.instance_prices
        if by_resource and card and (card.cpu_core_hour > 0 or card.ram_gb_hour > 0):
            return Weights(card.cpu_core_hour, card.ram_gb_hour, card.gpu_hour)
        return self.weights

    def node_hourly(
        self,
        *,
        provider: str,
        region: str,
        instance_type: str,
        cpu: Decimal,
        ram_gb: Decimal,
        gpus: int,
        day: date,
        book: PriceBook | None = None,
    ) -> tuple[Decimal, bool]:
        """The node's on-demand hourly price and whether it is an estimate (no price known
        for its instance type: priced by resources at the default unit prices). A spot
        node pays it times `spot_multiplier`."""
        card = self.rate_card
        if card is not None:
            listed = _stored_price(card.instance_prices.get(instance_type))
            if listed is not None:
                return listed * self.multiplier, False
            by_resource = (
                cpu * card.cpu_core_hour + ram_gb * card.ram_gb_hour + gpus * card.gpu_hour
            )
            return by_resource * self.multiplier, False
        if book is not None:
            listed = book.get(provider, region, instance_type)
        else:
            listed = list_price(
                provider=provider, region=region, instance_type=instance_type, day=day
            )
        if listed is not None:
            return listed * self.multiplier, False
        weights = self.weights
        estimate = (
            cpu * weights.cpu_core_hour + ram_gb * weights.ram_gb_hour + gpus * weights.gpu_hour
        )
        return estimate * self.multiplier, True


class PriceBook:
    """Every list price in force on a day, read in one query: a fleet-wide computation
    looks prices up here instead of querying once per node."""

    def __init__(self, day: date) -> None:
        self.day = day
        self._prices: dict[tuple[str, str, str], Decimal] = {}
        rows = InstancePrice.objects.filter(valid_from__lte=day).order_by("valid_from")
        for provider, region, instance_type, hourly in rows.values_list(
            "provider", "region", "instance_type", "hourly"
        ):
            self._prices[(provider, region, instance_type)] = Decimal(hourly)  # latest wins

    def get(self, provider: str, region: str, instance_type: str) -> Decimal | None:
        return self._prices.get((provider, region, instance_type)) or self._prices.get(
            (provider, "", instance_type)
        )


def list_price(*, provider: str, region: str, instance_type: str, day: date) -> Decimal | None:
    """The region's own price if known, else the provider's reference price."""
    candidates = InstancePrice.objects.filter(
        provider=provider, instance_type=instance_type, region__in=[region, ""], valid_from__lte=day
    ).order_by("-region", "-valid_from")
    price = candidates.values_list("hourly", flat=True).first()
    return Decimal(price) if price is not None else None


def rate_card_on(name: str, day: date, *, team_id: int) -> RateCard | None:
    """The team's card of that name in force on `day` (another team's card never applies)."""
    return (
        RateCard.objects.filter(name=name, team_id=team_id, valid_from__lte=day)
        .order_by("-valid_from")
        .first()
    )


def pricing_on(cluster: Cluster, day: date) -> ClusterPricing | None:
    return (
        ClusterPricing.objects.filter(cluster=cluster, valid_from__lte=day)
        .order_by("-valid_from")
        .first()
    )


def resolve(cluster: Cluster, day: date) -> ResolvedPricing:
    pricing = pricing_on(cluster, day)
    card = (
        rate_card_on(pricing.rate_card, day, team_id=cluster.team_id)
        if pricing and pricing.rate_card
        else None
    )
    multiplier = spot_multiplier = cpu_ram_factor = gpu_factor = Decimal(1)
    spot_discount = DEFAULT_SPOT_DISCOUNT_PERCENT
    if pricing is not None:
        cpu_ram_factor = 1 - pricing.discount_percent / HUNDRED
        gpu_factor = 1 - pricing.gpu_discount_percent / HUNDRED
        spot_discount = pricing.spot_discount_percent
        if pricing.spot:
            multiplier *= 1 - spot_discount / HUNDRED
    if pricing is None or not pricing.spot:
        spot_multiplier = 1 - spot_discount / HUNDRED
    weights = _weights(card)
    if pricing is not None and pricing.control_plane_monthly is not None:
        monthly = pricing.control_plane_monthly  # the operator's word wins
    else:
        service = managed_service(
            provider=cluster.provider,
            api_server_url=cluster.api_server_url,
            kubernetes_version=cluster.kubernetes_version,
        )
        monthly = CONTROL_PLANE_MONTHLY.get(service, Decimal(0))
    storage_month = (
        pricing.storage_gb_month
        if pricing is not None and pricing.storage_gb_month is not None
        else (
            card.storage_gb_month
            if card is not None and card.storage_gb_month
            else DEFAULT_STORAGE_GB_MONTH
        )
    )
    # The cluster's or its card's storage price applies to every class; without one, each
    # class has its provider's list price.
    by_class = (
        {}
        if storage_month is not DEFAULT_STORAGE_GB_MONTH
        else {
            name: price / HOURS_PER_MONTH
            for name, price in STORAGE_CLASS_GB_MONTH.get(cluster.provider, {}).items()
        }
    )
    return ResolvedPricing(
        weights=weights,
        rate_card=card,
        pricing=pricing,
        multiplier=multiplier,
        control_plane_hourly=monthly / HOURS_PER_MONTH,
        storage_gb_hour=storage_month / HOURS_PER_MONTH,
        share_idle=_share_idle(pricing),
        storage_class_gb_hour=by_class,
        spot_multiplier=spot_multiplier,
        shared_namespaces=frozenset(pricing.shared_namespaces if pricing else ()),
        shared_overhead_hourly=(
            pricing.shared_overhead_monthly / HOURS_PER_MONTH if pricing else Decimal(0)
        ),
        share_split="even" if pricing and pricing.share_split == "even" else "weighted",
        cpu_ram_factor=cpu_ram_factor,
        gpu_factor=gpu_factor,
    )


def _weights(card: RateCard | None) -> Weights:
    """How nodes priced by instance type are split: by the card's unit prices when it has
    them (a GPU without a card price weighs OpenCost's default), else OpenCost's."""
    if card is not None and card.cpu_core_hour > 0 and card.ram_gb_hour > 0:
        return Weights(card.cpu_core_hour, card.ram_gb_hour, card.gpu_hour or Weights().gpu_hour)
    return Weights()


def _share_idle(pricing: ClusterPricing | None) -> ShareIdle:
    if pricing is None or not pricing.share_idle:
        return SHARE_NONE
    return "cost" if pricing.share_idle_by == "cost" else "resource"
