"""Filter forms on pages: an unset filter reads "Any" (not "---------" or "Unknown")."""

from __future__ import annotations

from typing import Any

from django import forms

ANY = "Any"


def any_by_default(form: forms.Form) -> forms.Form:
    """Relabel the empty choice of every single-choice and yes/no filter of `form`.

    The FilterSets are shared with the API, so this changes only the page's widgets:
    a yes/no filter sends "" for Any, which the field reads as no filter, as before."""
    for field in form.fields.values():
        if isinstance(field, forms.NullBooleanField):
            field.widget = forms.Select(choices=[("", ANY), ("true", "Yes"), ("false", "No")])
        elif isinstance(field, forms.ChoiceField) and not isinstance(
            field, forms.MultipleChoiceField
        ):
            choices: list[Any] = [c for c in list(field.choices) if c[0] not in ("", None)]  # type: ignore[arg-type]
            if hasattr(field, "empty_label"):
                # django-filters' fields add their own empty choice when choices are set
                field.empty_label = ANY
                field.choices = choices
            else:
                field.choices = [("", ANY), *choices]
    return form
