"""Checks shared by the change kinds' parameters."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.core.exceptions import ValidationError


def params_object(params: Any, known: Collection[str]) -> dict[str, Any]:
    """`params` as a dict holding only `known` keys; ValidationError naming what is wrong."""
    if not isinstance(params, dict):
        raise ValidationError({"change_params": "The change's parameters must be an object."})
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValidationError(
            {
                "change_params": f"Unknown parameters: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})."
            }
        )
    return params
