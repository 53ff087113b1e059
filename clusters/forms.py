"""Page forms. Secrets (kubeconfig, token) are never re-rendered into a page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Team, slug_validator
from clusters.choices import ClusterMode, Provider
from clusters.labels import validate_labels, validate_taints


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
                f"Line {position}: write key=value:Effect (NoSelect, PreferNoSelect, "
                "NoSelectIfNew or NoExecute)."
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
        help_text="key=value:NoSelect, :PreferNoSelect, :NoSelectIfNew or :NoExecute, one a line.",
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


def parse_node_pools(text: str) -> list[dict[str, Any]]:
    """`name instance-type count` per line, e.g. `workers m5.large 3`."""
    pools = []
    for position, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValidationError(
                f"Line {position}: write name, instance type and count (e.g. workers m5.large 3)."
            )
        pools.append({"name": parts[0], "instance_type": parts[1], "count": int(parts[2])})
    if not pools:
        raise ValidationError("Give at least one node pool.")
    return pools


class CreateClusterForm(forms.Form):
    """Build a cluster through a provider. Provider-specific fields are shown for it only."""

    INFRASTRUCTURES = [
        ("aws", "AWS (EKS)"),
        ("azure", "Azure (AKS)"),
        ("gcp", "Google Cloud (GKE)"),
        ("vsphere", "vSphere (kubeadm)"),
    ]
    name = forms.CharField(max_length=63, validators=[slug_validator])
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="name")
    provider = forms.ChoiceField(
        choices=[("local", "Local (on this host)"), ("capi", "Cluster API")],
        widget=forms.RadioSelect,
        initial="local",
    )
    region = forms.CharField(max_length=64, required=False, initial="local")
    kubernetes_version = forms.CharField(max_length=16, initial="v1.20.2")
    node_pools = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        initial="workers m5.large 2",
        help_text="One pool per line: name, instance type, count.",
    )
    environment = forms.CharField(max_length=64, required=False)
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="key=value per line."
    )
    management_cluster = forms.CharField(max_length=63, required=False)
    infrastructure = forms.ChoiceField(choices=INFRASTRUCTURES, required=False)
    namespace = forms.CharField(max_length=63, required=False, initial="default")
    resource_group = forms.CharField(max_length=90, required=False, label="Azure resource group")
    subscription_id = forms.CharField(max_length=64, required=False, label="Azure subscription")
    project = forms.CharField(max_length=64, required=False, label="GCP project")
    server = forms.CharField(max_length=200, required=False, label="vCenter server")
    datacenter = forms.CharField(max_length=100, required=False, label="vSphere datacenter")
    template = forms.CharField(max_length=200, required=False, label="VM template")
    control_plane_endpoint = forms.CharField(
        max_length=200, required=False, label="Control plane endpoint (host:port)"
    )

    CAPI_PARAMS = (
        "management_cluster",
        "infrastructure",
        "namespace",
        "resource_group",
        "subscription_id",
        "project",
        "server",
        "datacenter",
        "template",
        "control_plane_endpoint",
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels", ""))

    def clean_node_pools(self) -> list[dict[str, Any]]:
        return parse_node_pools(self.cleaned_data.get("node_pools", ""))

    def spec_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        params: dict[str, Any] = {}
        if data["provider"] == "capi":
            params = {key: data[key] for key in self.CAPI_PARAMS if data.get(key)}
        return {
            "provider": data["provider"],
            "region": data.get("region", ""),
            "kubernetes_version": data["kubernetes_version"],
            "node_pools": data["node_pools"],
            "params": params,
        }
