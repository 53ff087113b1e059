"""The policy editor: plain fields plus the rules as YAML, validated by the service."""

from __future__ import annotations

from typing import Any

import yaml
from django import forms

from kube.safeyaml import YAMLInputError, load_one
from policies.choices import Mode, Severity
from policies.library import LATEST, PSS_VERSION_CHOICES
from policies.services.policies import PolicySpec

# Rules typed into the editor: the bundled library's largest policy is a few kilobytes.
RULES_MAX_BYTES = 256_000

RULES_HELP = (
    "A YAML list. Object rule: {name, kind: object, match: {kinds: [Pod]}, expression, "
    "message}. Template: {name, kind: template, compliance_type: musthave|mustonlyhave|"
    "mustnothave, object_template: {...}}. Cluster rule: {name, kind: cluster, expression}."
)


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.replace("\n", ",").split(",") if w.strip()]


class PolicyForm(forms.Form):
    team = forms.ChoiceField(choices=())
    name = forms.SlugField(max_length=63)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM)
    standards = forms.CharField(
        required=False, help_text="Comma-separated, e.g. pss-baseline, cis-5.2.1"
    )
    cluster_sets = forms.CharField(required=False, help_text="Comma-separated cluster set names.")
    cluster_selector = forms.CharField(
        required=False, max_length=1000, help_text="Label selector, e.g. env=prod,tier in (web)"
    )
    placement = forms.CharField(
        required=False,
        max_length=63,
        help_text="An application of the team: only the clusters it runs on.",
    )
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.INFORM)
    enabled = forms.BooleanField(required=False, initial=True)
    pss_version = forms.ChoiceField(
        label="Pod Security Standards version",
        choices=[(v, v) for v in PSS_VERSION_CHOICES],
        initial=LATEST,
        required=False,
        help_text="Bundled PSS policies only: the standard's version to check. Changing it "
        "replaces the rules with the library's at that version.",
    )
    rules = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
        help_text=RULES_HELP,
    )

    def __init__(self, *args: Any, teams: list[str], editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ChoiceField)
        team_field.choices = [(t, t) for t in teams]
        if editing:
            self.fields["team"].disabled = True
            self.fields["name"].disabled = True

    def clean_rules(self) -> list[dict[str, Any]]:
        try:
            rules = load_one(self.cleaned_data["rules"], max_bytes=RULES_MAX_BYTES)
        except YAMLInputError as error:
            raise forms.ValidationError(f"The rules are {error}.") from None
        rules = rules or []
        if not isinstance(rules, list):
            raise forms.ValidationError("The rules must be a YAML list.")
        return rules

    def spec(self) -> PolicySpec:
        data = self.cleaned_data
        return PolicySpec(
            name=data["name"],
            description=data["description"],
            severity=data["severity"],
            standards=_words(data["standards"]),
            cluster_sets=_words(data["cluster_sets"]),
            cluster_selector=data["cluster_selector"].strip(),
            placement=data["placement"].strip(),
            mode=data["mode"],
            enabled=data["enabled"],
            rules=data["rules"],
            pss_version=data.get("pss_version") or LATEST,
        )

    @staticmethod
    def initial_for(spec: PolicySpec, team: str) -> dict[str, Any]:
        return {
            "team": team,
            "name": spec.name,
            "description": spec.description,
            "severity": spec.severity,
            "standards": ", ".join(spec.standards),
            "cluster_sets": ", ".join(spec.cluster_sets),
            "cluster_selector": spec.cluster_selector,
            "placement": spec.placement,
            "mode": spec.mode,
            "enabled": spec.enabled,
            "pss_version": spec.pss_version,
            "rules": yaml.safe_dump(spec.rules, sort_keys=False, width=100),
        }
