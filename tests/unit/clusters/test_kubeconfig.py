"""Reading uploaded kubeconfigs: contexts, and every reason one cannot be used."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from kube.kubeconfig import KubeconfigError, connection_from_kubeconfig, list_contexts

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
TOKEN = "s3cret-token-value"


def _config(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "east",
                "cluster": {
                    "server": "https://east.example:6443",
                    "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
                },
            },
            {"name": "west", "cluster": {"server": "https://west.example:6443"}},
        ],
        "users": [{"name": "admin", "user": user or {"token": TOKEN}}],
        "contexts": [
            {"name": "east-admin", "context": {"cluster": "east", "user": "admin"}},
            {"name": "west-admin", "context": {"cluster": "west", "user": "admin"}},
        ],
        "current-context": "east-admin",
    }


def test_contexts_are_listed_with_servers_and_no_secrets() -> None:
    contexts, current = list_contexts(yaml.safe_dump(_config()))
    assert current == "east-admin"
    assert [(c.name, c.server) for c in contexts] == [
        ("east-admin", "https://east.example:6443"),
        ("west-admin", "https://west.example:6443"),
    ]
    assert TOKEN not in repr(contexts)


def test_current_context_is_the_default_and_the_secret_stays_out_of_repr() -> None:
    spec = connection_from_kubeconfig(yaml.safe_dump(_config()))
    assert spec.server == "https://east.example:6443"
    assert spec.ca_data == CA
    assert spec.token == TOKEN
    assert TOKEN not in repr(spec)


@pytest.mark.parametrize(
    ("text", "context", "fragment"),
    [
        ("", None, "empty"),
        ("clusters: [", None, "not valid YAML at line"),
        ("kind: Pod", None, "not a kubeconfig"),
        (yaml.safe_dump(_config()), "nope", "no context 'nope' (it has: east-admin, west-admin)"),
        (
            yaml.safe_dump(_config(exec={"command": "aws"})),
            None,
            "exec or auth-provider plugin",
        ),
        (
            yaml.safe_dump(_config(**{"client-certificate": "/home/me/cert.pem"})),
            None,
            "file paths on your machine",
        ),
        (yaml.safe_dump(_config(username="x")), None, "no token and no client certificate"),
    ],
)
def test_unusable_kubeconfigs_say_why(text: str, context: str | None, fragment: str) -> None:
    with pytest.raises(KubeconfigError) as raised:
        connection_from_kubeconfig(text, context)
    assert fragment in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_ca_file_paths_and_plain_http_are_refused() -> None:
    config = _config()
    config["clusters"][0]["cluster"] = {
        "server": "https://east.example:6443",
        "certificate-authority": "/etc/ca.crt",
    }
    with pytest.raises(KubeconfigError, match="CA is a file path"):
        connection_from_kubeconfig(yaml.safe_dump(config))
    config["clusters"][0]["cluster"] = {"server": "http://east.example:8080"}
    with pytest.raises(KubeconfigError, match="must be an https:// URL"):
        connection_from_kubeconfig(yaml.safe_dump(config))
