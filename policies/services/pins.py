"""Pinning a cluster set to a version of the Pod Security Standards (precedence in
`policies.services.evaluation.versions`)."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import ClusterSet
from clusters.services.lifecycle import cluster_set_clusters
from core.celery import task_send
from policies.library import LATEST, PSS_VERSION_CHOICES
from policies.models import ClusterSetPin, Policy
from policies.services.evaluation import BATCH_SIZE, EVALUATE_INTERVAL, EVALUATE_TASK
from policies.services.evaluation.versions import follows_set_pin

logger = logging.getLogger(__name__)


def cluster_set_pss_version(*, cluster_set: ClusterSet) -> str:
    pin = ClusterSetPin.objects.filter(cluster_set=cluster_set).first()
    return pin.pss_version if pin is not None else LATEST


@transaction.atomic
def cluster_set_pin(
    *, cluster_set: ClusterSet, pss_version: str, actor: AbstractBaseUser | None
) -> str:
    """Pin the set to `pss_version` ("latest" removes the pin), audited; the set's clusters
    are evaluated again by the PSS policies that follow the pin. Returns the version."""
    if pss_version not in PSS_VERSION_CHOICES:
        raise ValidationError({"pss_version": [f"Use one of {', '.join(PSS_VERSION_CHOICES)}."]})
    before = cluster_set_pss_version(cluster_set=cluster_set)
    if pss_version == before:
        return before
    if pss_version == LATEST:
        ClusterSetPin.objects.filter(cluster_set=cluster_set).delete()
    else:
        ClusterSetPin.objects.update_or_create(
            cluster_set=cluster_set,
            defaults={"pss_version": pss_version, "set_by_id": actor.pk if actor else None},
        )
    audit_record(
        actor=actor,
        action="policy.pss_pin",
        target=cluster_set,
        team=cluster_set.team,
        detail={"cluster_set": cluster_set.name, "before": before, "pss_version": pss_version},
    )
    _evaluate_soon(cluster_set)
    return pss_version


def _evaluate_soon(cluster_set: ClusterSet) -> None:
    """After the commit, a forced evaluation of the set's clusters by the policies that
    follow the pin (a forced one: their generation did not change)."""

    def send() -> None:
        policies = Policy.objects.filter(team_id=cluster_set.team_id, enabled=True, bundled=True)
        policy_ids = [p.pk for p in policies if follows_set_pin(p)]
        ids = list(
            cluster_set_clusters(cluster_set=cluster_set)
            .filter(mode=ClusterMode.PUSH)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not policy_ids:
            return
        try:
            for start in range(0, len(ids), BATCH_SIZE):
                task_send(
                    EVALUATE_TASK,
                    args=[ids[start : start + BATCH_SIZE], policy_ids, True],
                    expires=EVALUATE_INTERVAL,
                )
        except Exception:  # the broker is down: the next collection re-opens them anyway
            logger.warning("could not queue the evaluation of set %s", cluster_set.name)

    transaction.on_commit(send)
