"""The channel form of the pages. Secrets are never rendered back into a page: their
fields start empty, and an empty one keeps what is stored."""

from __future__ import annotations

from typing import Any

from django import forms

from notifications.choices import ChannelKind, Severity
from notifications.models import Channel
from notifications.services import ChannelSpec


class ChannelForm(forms.Form):
    team = forms.ChoiceField(choices=())
    name = forms.SlugField(max_length=63)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    enabled = forms.BooleanField(required=False, initial=True)
    min_severity = forms.ChoiceField(
        choices=Severity.choices,
        initial=Severity.INFO,
        label="Minimum severity",
        help_text="Only notifications this severe or more reach the channel.",
    )
    recipients = forms.CharField(
        required=False, help_text="E-mail: comma-separated addresses.", max_length=5000
    )
    url = forms.CharField(
        required=False,
        max_length=2048,
        label="URL",
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Webhook, Slack, Teams: the incoming-webhook URL (kept secret). Alertmanager: its "
            "base URL, e.g. https://alertmanager.example.com:9093."
        ),
    )
    hmac_secret = forms.CharField(
        required=False,
        max_length=512,
        strip=False,
        label="Signing secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="Generic webhook: the HMAC-SHA256 key of X-Keelson-Signature (16+ characters).",
    )
    username = forms.CharField(required=False, max_length=150, help_text="Alertmanager basic auth.")
    password = forms.CharField(
        required=False,
        max_length=512,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Alertmanager basic auth.",
    )

    def __init__(
        self, *args: Any, teams: list[str], channel: Channel | None = None, **kwargs: Any
    ) -> None:
        if channel is not None:
            kwargs.setdefault(
                "initial",
                {
                    "team": channel.team.name,
                    "name": channel.name,
                    "kind": channel.kind,
                    "enabled": channel.enabled,
                    "min_severity": channel.min_severity,
                    "recipients": ", ".join(channel.recipients),
                    "username": channel.username,
                },
            )
        super().__init__(*args, **kwargs)
        self.channel = channel
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ChoiceField)
        team_field.choices = [(t, t) for t in teams]
        if channel is not None:
            # Fixed once created: shown, not sent.
            for name in ("team", "kind"):
                self.fields[name].disabled = True
            if channel.secret_names:
                stored = ", ".join(channel.secret_names)
                for name in ("url", "hmac_secret", "password"):
                    self.fields[name].widget.attrs["placeholder"] = "stored — empty keeps it"
                self.fields["url"].help_text += f" Stored secrets: {stored}."
            if channel.kind == ChannelKind.ALERTMANAGER:
                self.fields["url"].widget = forms.TextInput()
                self.initial.setdefault("url", channel.config.get("url", ""))

    def spec(self) -> ChannelSpec:
        data = self.cleaned_data
        kind = data["kind"]
        keep_secret = self.channel is not None
        url = data["url"].strip()
        return ChannelSpec(
            name=data["name"],
            kind=kind,
            enabled=data["enabled"],
            min_severity=data["min_severity"],
            recipients=[r.strip() for r in data["recipients"].split(",") if r.strip()],
            url=url if url or not keep_secret else None,
            hmac_secret=data["hmac_secret"] or (None if keep_secret else ""),
            username=data["username"].strip(),
            password=data["password"] or None,
        )
