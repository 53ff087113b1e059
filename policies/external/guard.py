"""External policies are read-only: the refusal every change of one gets."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from policies.models import Policy

REFUSED = (
    "{name} is an external policy: {engine} judges it on the clusters and Keelson only "
    "records its results. Change or remove it in {engine}."
)


def refuse_external(policy: Policy) -> None:
    """Editing, deleting, evaluating or enforcing an external policy: a clear refusal."""
    if policy.external:
        raise ValidationError(
            REFUSED.format(name=policy.name, engine=policy.get_source_engine_display())
        )
