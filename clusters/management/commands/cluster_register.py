"""`manage.py cluster_register`: the same registration as the page and the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Team
from clusters.choices import Provider
from clusters.forms import parse_labels
from clusters.services.registration import (
    ClusterFields,
    RegistrationError,
    cluster_register_pull,
    cluster_register_push,
    connection_from_input,
)


class Command(BaseCommand):
    help = "Register a cluster: push (kubeconfig, or server + token + CA) or pull (agent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--team", required=True)
        parser.add_argument("--provider", choices=Provider.values, default=Provider.OTHER)
        parser.add_argument("--region", default="")
        parser.add_argument("--zone", default="")
        parser.add_argument("--environment", default="")
        parser.add_argument("--label", action="append", default=[], help="key=value")
        parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file")
        parser.add_argument("--context", default="", help="kubeconfig context")
        parser.add_argument("--server", default="", help="API server URL")
        parser.add_argument("--token-file", type=Path, help="file holding the bearer token")
        parser.add_argument("--ca-file", type=Path, help="CA bundle (PEM)")
        parser.add_argument("--pull", action="store_true", help="pull mode: print a token")

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(name=options["team"]).first()
        if team is None:
            raise CommandError(f"No team named {options['team']!r}.")
        try:
            labels = parse_labels("\n".join(options["label"]))
        except Exception as error:
            raise CommandError(f"--label: {error}") from None
        fields = ClusterFields(
            name=options["name"],
            team=team,
            provider=options["provider"],
            region=options["region"],
            zone=options["zone"],
            environment=options["environment"],
            labels=labels,
        )
        try:
            if options["pull"]:
                cluster, token = cluster_register_pull(actor=None, fields=fields)
                self.stdout.write(f"Cluster {cluster.name} created (pull mode). Run the agent:")
                self.stdout.write(f"  python -m agent --hub <hub URL> --token {token}")
                return
            spec, kind = connection_from_input(
                kubeconfig=_read(options["kubeconfig"]),
                context=options["context"],
                server=options["server"],
                token=_read(options["token_file"]).strip(),
                ca_data=_read(options["ca_file"]),
            )
            self.stdout.write(f"Checking {spec.server} (reachability, TLS, auth, permissions)…")
            cluster, report = cluster_register_push(
                actor=None, fields=fields, spec=spec, kind=kind, context=options["context"]
            )
        except RegistrationError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Registered {cluster.name} ({report.kubernetes_version}).")
        )
        if report.read_only:
            self.stdout.write(
                self.style.WARNING("Read-only access: " + ", ".join(report.missing_write))
            )


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}") from None
