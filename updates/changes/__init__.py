"""What an update run changes on each cluster: one module per kind (changes/base.py)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from updates.changes.base import Change

logger = logging.getLogger(__name__)

# Loaded by name so the engine does not import every kind (and each kind's app) up front.
CHANGES = {
    "kubernetes_version": "updates.changes.kubernetes_version.KubernetesVersionChange",
    "node_pool": "updates.changes.node_pool.NodePoolChange",
    "policy_mode": "updates.changes.policy_mode.PolicyModeChange",
    "application_version": "updates.changes.application_version.ApplicationVersionChange",
}


def change_for(kind: str, *, team: Any, params: dict[str, Any]) -> Change:
    """The change of `kind` with validated parameters (ValidationError names the field)."""
    if kind not in CHANGES:
        raise ValidationError(
            {"change_kind": f"Unknown change {kind!r} (known: {', '.join(sorted(CHANGES))})."}
        )
    try:
        cls = import_string(CHANGES[kind])
    except ImportError:
        # A kind this installation lists but cannot load: refused like an unknown one.
        logger.exception("change kind %s cannot be loaded", kind)
        raise ValidationError({"change_kind": f"The change {kind!r} is not available."}) from None
    change: Change = cls(team=team, params=params)
    return change
