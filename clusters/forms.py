"""Page forms. Secrets (kubeconfig, token) are never re-rendered into a page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from clusters.choices import ClusterMode, Provider
from clusters.labels import validate_labels, validate_taints
from fleet.accounts.models import Team, slug_validator


def parse_labels(text: str) -> dict[str, str]:
    """`key=value` per line (or comma-separated), as `kubectl label` takes them."""
    labels: dict[str, str] = {}
    for position, item in enumerate(_items(text), start=1):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError(f"Line {position}: write key=value (got {item!r}).")
        labels[key.strip()] = value.strip()
    validate_labels(labels)
    return labels


def parse_taints(text: str) -> list[dict[str, str]]:
    """`key=value:Effect` per line, as `kubectl taint` takes them."""
    taints = []
    for position, item in enumerate(_items(text), start=1):
        spec, sep, effect = item.rpartition(":")
        if not sep:
            raise ValidationError(
                f"Line {position}: write key=value:NoSelect or key=value:PreferNoSelect."
            )
        key, _, value = spec.partition("=")
        taints.append({"key": key.strip(), "value": value.strip(), "effect": effect.strip()})
    validate_taints(taints)
    return taints


def _items(text: str) -> list[str]:
    return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


def labels_text(labels: dict[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted(labels.items()))


def taints_text(taints: list[dict[str, str]]) -> str:
    return "\n".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in taints)


class ClusterMetaForm(forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    provider = forms.ChoiceField(choices=Provider.choices, initial=Provider.ONPREM)
    region = forms.CharField(max_length=64, required=False)
    zone = forms.CharField(max_length=64, required=False)
    environment = forms.CharField(max_length=64, required=False)
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "env=prod\ntier=web"}),
        required=False,
        help_text="key=value, one per line.",
    )
    taints = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "dedicated=payments:NoSelect"}),
        required=False,
        help_text="key=value:NoSelect or :PreferNoSelect, one per line.",
    )

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels", ""))

    def clean_taints(self) -> list[dict[str, str]]:
        return parse_taints(self.cleaned_data.get("taints", ""))


class RegisterForm(ClusterMetaForm):
    METHODS = [
        ("kubeconfig", "Upload a kubeconfig (push)"),
        ("token", "API server URL, token and CA (push)"),
        (ClusterMode.PULL.value, "Install an agent in the cluster (pull)"),
    ]
    name = forms.CharField(
        max_length=63, validators=[slug_validator], help_text="Lowercase, digits and '-'."
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="name")
    method = forms.ChoiceField(choices=METHODS, widget=forms.RadioSelect, initial="kubeconfig")
    kubeconfig = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        required=False,
        help_text="Paste it, or choose a file. `kubectl config view --raw --flatten --minify`.",
    )
    kubeconfig_file = forms.FileField(required=False)
    kubeconfig_context = forms.CharField(max_length=253, required=False)
    server = forms.CharField(max_length=500, required=False, label="API server URL")
    token = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        required=False,
        label="Bearer token",
    )
    ca_data = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        required=False,
        label="CA bundle (PEM)",
    )
    insecure_skip_tls_verify = forms.BooleanField(
        required=False, label="Skip TLS verification (not recommended)"
    )

    field_order = ["name", "team", "method"]

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("kubeconfig_file")
        if upload is not None:
            if upload.size > 1_000_000:
                self.add_error("kubeconfig_file", "The kubeconfig is larger than 1 MB.")
            else:
                try:
                    cleaned["kubeconfig"] = upload.read().decode()
                except UnicodeDecodeError:
                    self.add_error("kubeconfig_file", "The file is not a text kubeconfig.")
        method = cleaned.get("method")
        if method == "kubeconfig" and not cleaned.get("kubeconfig"):
            self.add_error("kubeconfig", "Paste or upload the kubeconfig.")
        return cleaned


class DeregisterForm(forms.Form):
    cleanup = forms.BooleanField(
        required=False, label="Also remove everything Keelson put in the cluster"
    )
    confirm = forms.CharField(max_length=63, label="Type the cluster's name to confirm")

    def __init__(self, *args: Any, cluster_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_name = cluster_name

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data["confirm"]).strip()
        if value != self.cluster_name:
            raise ValidationError("The name does not match.")
        return value
