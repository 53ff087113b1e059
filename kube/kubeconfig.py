"""Reading an uploaded kubeconfig into a `ConnectionSpec`, without touching the filesystem.

The hub cannot run a user's exec plugins or read files named in their kubeconfig, so
those are refused with a message saying what to use instead.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kube.client import ConnectionSpec
from kube.safeyaml import YAMLInputError, load_one, shorten

MAX_BYTES = 1_000_000


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message says why (and never holds a secret)."""


@dataclass(frozen=True)
class ContextInfo:
    name: str
    cluster: str
    server: str
    user: str
    namespace: str


def _load(text: str) -> dict[str, Any]:
    if not text or not text.strip():
        raise KubeconfigError("The kubeconfig is empty.")
    try:
        document = load_one(text, max_bytes=MAX_BYTES)
    except YAMLInputError as error:
        raise KubeconfigError(f"The kubeconfig is {error}.") from None
    if not isinstance(document, dict) or document.get("kind", "Config") != "Config":
        raise KubeconfigError("This is not a kubeconfig (expected kind: Config).")
    for section in ("clusters", "users", "contexts"):
        if not isinstance(document.get(section) or [], list):
            raise KubeconfigError(f"The kubeconfig's '{section}' must be a list.")
    return document


def _named(document: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if isinstance(body, dict):
                return body
    raise KubeconfigError(f"The kubeconfig has no {section[:-1]} named {shorten(name)!r}.")


def list_contexts(text: str) -> tuple[list[ContextInfo], str]:
    """Every context with its server (no secrets), and the current context's name."""
    document = _load(text)
    contexts = []
    for entry in document.get("contexts") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("context"), dict):
            continue
        body = entry["context"]
        cluster_name = str(body.get("cluster", ""))
        server = ""
        with contextlib.suppress(KubeconfigError):
            server = str(_named(document, "clusters", cluster_name).get("server", ""))
        contexts.append(
            ContextInfo(
                name=str(entry.get("name", "")),
                cluster=cluster_name,
                server=server,
                user=str(body.get("user", "")),
                namespace=str(body.get("namespace", "")),
            )
        )
    if not contexts:
        raise KubeconfigError("The kubeconfig has no contexts.")
    return contexts, str(document.get("current-context") or "")


def _b64(value: Any, what: str) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise KubeconfigError(f"The kubeconfig's {what} is not valid base64 PEM.") from None


def connection_from_kubeconfig(text: str, context: str | None = None) -> ConnectionSpec:
    """The server, CA and user credentials of `context` (the current context if None)."""
    document = _load(text)
    contexts, current = list_contexts(text)
    chosen = context or current
    if not chosen:
        if len(contexts) > 1:
            raise KubeconfigError(
                "The kubeconfig has several contexts and no current-context: choose one."
            )
        chosen = contexts[0].name
    info = next((c for c in contexts if c.name == chosen), None)
    if info is None:
        names = shorten(", ".join(c.name for c in contexts[:20]))
        raise KubeconfigError(
            f"The kubeconfig has no context {shorten(chosen)!r} (it has: {names})."
        )
    chosen = shorten(chosen)
    cluster = _named(document, "clusters", info.cluster)
    user = _named(document, "users", info.user)

    server = str(cluster.get("server") or "")
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise KubeconfigError(
            f"Context {chosen!r}: the server must be an https:// URL "
            f"(got {shorten(server) if server else 'nothing'})."
        )
    if "certificate-authority" in cluster and "certificate-authority-data" not in cluster:
        raise KubeconfigError(
            f"Context {chosen!r}: the CA is a file path on your machine; embed it with "
            "`kubectl config view --raw --flatten --minify`."
        )
    ca = (
        _b64(cluster["certificate-authority-data"], "CA")
        if cluster.get("certificate-authority-data")
        else ""
    )
    insecure = bool(cluster.get("insecure-skip-tls-verify", False))

    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(
            f"Context {chosen!r}: the user authenticates with an exec or auth-provider plugin, "
            "which the hub cannot run. Use a service-account token or a client certificate."
        )
    if ("client-certificate" in user or "client-key" in user or "tokenFile" in user) and not (
        user.get("client-certificate-data") or user.get("token")
    ):
        raise KubeconfigError(
            f"Context {chosen!r}: the user's credentials are file paths on your machine; embed "
            "them with `kubectl config view --raw --flatten --minify`."
        )
    token = str(user.get("token") or "")
    cert = (
        _b64(user["client-certificate-data"], "client certificate")
        if user.get("client-certificate-data")
        else ""
    )
    key = _b64(user["client-key-data"], "client key") if user.get("client-key-data") else ""
    if bool(cert) != bool(key):
        raise KubeconfigError(f"Context {chosen!r}: a client certificate needs its key, and back.")
    if not token and not cert:
        raise KubeconfigError(
            f"Context {chosen!r}: the user has no token and no client certificate."
        )
    return ConnectionSpec(
        server=server.rstrip("/"),
        ca_data=ca,
        token=token,
        client_cert_data=cert,
        client_key_data=key,
        insecure_skip_tls_verify=insecure,
    )
