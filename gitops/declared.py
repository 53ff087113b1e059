"""Documents of the cost and report kinds: `RateCard`, `Budget` and `ReportDefinition`,
validated with the API's serializers (what needs the database, a team or a cluster set,
is resolved when a sync applies). Their state here is the form gitops.kinds reads from
the database, so a plan compares like with like. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from costs.api import BudgetSerializer, RateCardSerializer
from gitops.validation import Invalid, api_validated, unknown_fields
from policies.api.serializers import ReportDefinitionSerializer
from policies.services.reports import ReportSpec, parse_schedule

if TYPE_CHECKING:
    from gitops.documents import Document

PRICES = ("cpu_core_hour", "ram_gb_hour", "gpu_hour", "storage_gb_month")
RATE_CARD_VERSION = ("valid_from", *PRICES, "instance_prices")
BUDGET_FIELDS = ("monthly_amount", "cluster_set")
REPORT_FIELDS = tuple(name for name in ReportSpec.__dataclass_fields__ if name != "name")


def amount(value: Any, places: int) -> str:
    """A price or amount as the database holds it (fixed decimal places), as text."""
    return format(Decimal(str(value)).quantize(Decimal(1).scaleb(-places)), "f")


def rate_card_version(values: Mapping[str, Any]) -> dict[str, Any]:
    """One version of a rate card, from validated data or a row alike."""
    version: dict[str, Any] = {"valid_from": str(values["valid_from"])}
    version.update({key: amount(values.get(key) or 0, 6) for key in PRICES})
    version["instance_prices"] = dict(values.get("instance_prices") or {})
    return version


def rate_card(document: Document) -> dict[str, Any]:
    """`spec.versions`: the card's prices, each from its `valid_from` date on."""
    unknown_fields(document.spec, ("versions",))
    versions = document.spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise ValidationError({"spec.versions": ["List the versions: valid_from and prices."]})
    rows, errors = [], []
    for number, version in enumerate(versions, start=1):
        where = f"spec.versions[{number}]"
        if not isinstance(version, dict):
            errors.append(f"{where}: a mapping of valid_from and prices")
            continue
        if unknown := sorted(set(version) - set(RATE_CARD_VERSION)):
            errors.append(f"{where}: unknown fields {', '.join(map(str, unknown))}")
            continue
        data = {**version, "name": document.name}
        try:
            rows.append(
                rate_card_version(
                    api_validated(RateCardSerializer, data, without=("team",), prefix=where)
                )
            )
        except Invalid as error:
            errors += error.lines
    dates = [row["valid_from"] for row in rows]
    errors += [
        f"spec.versions: {day} is declared twice"
        for day in sorted(set(dates))
        if dates.count(day) > 1
    ]
    if errors:
        raise Invalid(errors)
    return {"versions": sorted(rows, key=lambda row: row["valid_from"])}


def budget(document: Document) -> dict[str, Any]:
    """`spec.monthly_amount`, and `spec.cluster_set` (a cluster set's name) or none."""
    spec = document.spec
    unknown_fields(spec, BUDGET_FIELDS)
    cluster_set = spec.get("cluster_set") or ""
    if not isinstance(cluster_set, str):
        raise ValidationError({"spec.cluster_set": ["Name a cluster set of the team."]})
    data = {"name": document.name, "monthly_amount": spec.get("monthly_amount")}
    valid = api_validated(BudgetSerializer, data, without=("team", "cluster_set"))
    if valid["monthly_amount"] <= 0:
        raise ValidationError({"spec.monthly_amount": ["The amount must be above 0."]})
    return {"monthly_amount": amount(valid["monthly_amount"], 2), "cluster_set": cluster_set}


def report_state(spec: ReportSpec) -> dict[str, Any]:
    state = asdict(spec)
    del state["name"]
    state["formats"] = list(dict.fromkeys(state["formats"]))
    return state


def report_definition(document: Document) -> dict[str, Any]:
    """The fields of POST /api/v1/report-definitions/ but the team."""
    unknown_fields(document.spec, REPORT_FIELDS)
    data = api_validated(ReportDefinitionSerializer, {**document.spec, "name": document.name})
    spec = ReportSpec(**data)
    try:
        parse_schedule(spec.schedule)
    except ValidationError as error:
        raise ValidationError({"spec.schedule": error.messages}) from None
    return report_state(spec)


STATES = {"RateCard": rate_card, "Budget": budget, "ReportDefinition": report_definition}
