"""Forms of the update-run pages: fields typed by people, checked for shape here; what
they mean (stages, windows, a change's parameters) is validated by updates.services."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from kube.safeyaml import YAMLInputError, load_one
from policies.choices import Mode
from updates.choices import ChangeKind
from updates.models import UpdateStrategy

# Stages typed into the editor: 20 stages of a few groups is a few kilobytes.
STAGES_MAX_BYTES = 64_000
GATES_MAX_BYTES = 8_000
ISO_DAYS = [
    ("1", "Mon"),
    ("2", "Tue"),
    ("3", "Wed"),
    ("4", "Thu"),
    ("5", "Fri"),
    ("6", "Sat"),
    ("7", "Sun"),
]
# The parameters of each change kind (updates/changes/<kind>.py), by form field.
CHANGE_PARAMS: dict[str, tuple[str, ...]] = {
    ChangeKind.KUBERNETES_VERSION: ("version",),
    ChangeKind.NODE_POOL: ("pool", "image", "instance_type", "pool_version"),
    ChangeKind.POLICY_MODE: ("policy", "mode"),
    ChangeKind.APPLICATION_VERSION: ("application", "app_version"),
}
# Form fields whose parameter has another name (two kinds take a `version`).
PARAM_NAMES = {"pool_version": "version", "app_version": "version"}


@cache
def timezone_choices() -> list[tuple[str, str]]:
    """Every IANA zone this system knows, UTC first."""
    zones = sorted(zoneinfo.available_timezones() - {"UTC"})
    return [("UTC", "UTC"), *((zone, zone) for zone in zones)]


def _load(text: str, *, max_bytes: int, what: str) -> Any:
    try:
        return load_one(text, max_bytes=max_bytes)
    except YAMLInputError as error:
        raise ValidationError(f"The {what} are {error}.") from None


def _team_field(form: forms.Form, teams: list[str]) -> None:
    field = form.fields["team"]
    assert isinstance(field, forms.ChoiceField)
    field.choices = [(t, t) for t in teams]


class StrategyForm(forms.Form):
    team = forms.ChoiceField(choices=())
    name = forms.SlugField(max_length=63)
    description = forms.CharField(max_length=500, required=False)
    stages = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}),
        help_text="A YAML or JSON list of stages (the format is explained beside the form).",
    )

    def __init__(self, *args: Any, teams: list[str], editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _team_field(self, teams)
        if editing:
            self.fields["team"].disabled = True
            self.fields["name"].disabled = True

    def clean_stages(self) -> Any:
        stages = _load(self.cleaned_data["stages"], max_bytes=STAGES_MAX_BYTES, what="stages")
        if not isinstance(stages, list):
            raise ValidationError("The stages must be a list (one item per stage).")
        return stages


class WindowForm(forms.Form):
    team = forms.ChoiceField(choices=())
    name = forms.SlugField(max_length=63)
    cluster_set = forms.ChoiceField(choices=(), help_text="The clusters this window is for.")
    days = forms.MultipleChoiceField(
        choices=ISO_DAYS, widget=forms.CheckboxSelectMultiple, required=False
    )
    start_time = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Local time in the window's time zone.",
    )
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)", min_value=1, max_value=7 * 24 * 60, initial=120
    )
    timezone = forms.ChoiceField(choices=(), initial="UTC")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(
        self,
        *args: Any,
        teams: list[str],
        cluster_sets: list[tuple[str, str]],
        editing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        _team_field(self, teams)
        sets = self.fields["cluster_set"]
        assert isinstance(sets, forms.ChoiceField)
        sets.choices = cluster_sets
        zones = self.fields["timezone"]
        assert isinstance(zones, forms.ChoiceField)
        zones.choices = timezone_choices()
        if editing:
            self.fields["team"].disabled = True
            self.fields["name"].disabled = True

    def clean_days(self) -> list[int]:
        return sorted(int(day) for day in self.cleaned_data["days"])


class RunForm(forms.Form):
    """A draft run: its strategy, the change and its parameters, an optional scope."""

    name = forms.CharField(max_length=100)
    strategy = forms.ChoiceField(choices=())
    change_kind = forms.ChoiceField(
        label="Change", choices=ChangeKind.choices, widget=forms.RadioSelect
    )
    version = forms.CharField(
        label="Kubernetes version", max_length=40, required=False, help_text="e.g. v1.29.4"
    )
    pool = forms.CharField(label="Node pool", max_length=63, required=False)
    image = forms.CharField(label="Node image", max_length=100, required=False)
    instance_type = forms.CharField(label="Instance type", max_length=100, required=False)
    pool_version = forms.CharField(
        label="Kubelet version", max_length=40, required=False, help_text="Empty: unchanged."
    )
    policy = forms.CharField(
        label="Policy",
        max_length=63,
        required=False,
        widget=forms.TextInput(attrs={"list": "policy-names"}),
    )
    mode = forms.ChoiceField(label="Mode", choices=Mode.choices, initial=Mode.ENFORCE)
    application = forms.CharField(
        label="Application",
        max_length=63,
        required=False,
        widget=forms.TextInput(attrs={"list": "application-names"}),
    )
    app_version = forms.IntegerField(
        label="Application version", min_value=1, required=False, help_text="Its number."
    )
    eol_only = forms.BooleanField(
        label="Only clusters past their version's end of life", required=False
    )
    gates = forms.CharField(
        label="Health gates (YAML or JSON, optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text='Empty: the default gates. e.g. {"workloads": true, "policies": false}',
    )

    def __init__(self, *args: Any, strategies: list[UpdateStrategy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategies = {str(s.pk): s for s in strategies}
        field = self.fields["strategy"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(pk, f"{s.team.name} / {s.name}") for pk, s in self.strategies.items()]

    def clean_gates(self) -> dict[str, Any] | None:
        text = self.cleaned_data["gates"].strip()
        if not text:
            return None
        gates = _load(text, max_bytes=GATES_MAX_BYTES, what="gates")
        if not isinstance(gates, dict):
            raise ValidationError('The gates must be a mapping, e.g. {"workloads": true}.')
        return gates

    def chosen_strategy(self) -> UpdateStrategy:
        return self.strategies[self.cleaned_data["strategy"]]

    def change_params(self) -> dict[str, Any]:
        """The chosen kind's parameters, without the empty ones (the kind says which it
        needs)."""
        data = self.cleaned_data
        params: dict[str, Any] = {}
        for field in CHANGE_PARAMS[data["change_kind"]]:
            value = data.get(field)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, ""):
                params[PARAM_NAMES.get(field, field)] = value
        return params

    def scope(self) -> dict[str, Any] | None:
        return {"eol": "past"} if self.cleaned_data["eol_only"] else None

    def field_for(self, key: str) -> str | None:
        """The form field an error of the service names (`change_params.version`,
        `version`, `stages`...), if the form has it."""
        name = key.removeprefix("change_params.").removeprefix("params.")
        if name == "version" and self.is_bound:
            kind = self.data.get("change_kind")
            name = {"node_pool": "pool_version", "application_version": "app_version"}.get(
                str(kind), name
            )
        if name == "scope":
            name = "eol_only"
        return name if name in self.fields else None


def add_service_errors(form: forms.Form, error: ValidationError, *, field_for: Any = None) -> None:
    """A service's ValidationError on the form: under the field it names when the form has
    it (`field_for` maps a service's key to a field), else above the form with its key
    (`stages[1].groups[0].selector: ...` keeps its path)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for key, problems in error.message_dict.items():
        name = field_for(key) if field_for else (key if key in form.fields else None)
        if name is None and "[" in key and key.split("[", 1)[0] in form.fields:
            name = key.split("[", 1)[0]
        if name is not None and name != key:
            problems = [f"{key}: {p}" if not p.startswith(key) else p for p in problems]
        if name is None and key != "__all__":
            problems = [f"{key.replace('_', ' ')}: {p}" for p in problems]
        form.add_error(name, problems)
