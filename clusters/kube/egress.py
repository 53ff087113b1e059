"""Which API server addresses the hub may connect to (SSRF protection).

`KEELSON_CLUSTER_URL_ALLOWLIST` lists networks (CIDR), hosts, and `*.domain` suffixes the
hub may reach; empty allows any address except the always-denied ones: link-local
(169.254.0.0/16, fe80::/10, cloud metadata services) and unspecified addresses, which only
a listed network of /16 or narrower re-allows. Loopback is denied unless listed or
`KEELSON_CLUSTER_ALLOW_LOOPBACK` is on (`make run` turns it on for the local provider).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

ALWAYS_DENIED = [
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
]
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


class EgressDenied(ValueError):
    """The URL points somewhere the hub must not connect to."""


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []  # unresolvable: the connection check reports it as unreachable
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_egress(url: str) -> None:
    """Raise EgressDenied if the hub may not connect to `url`'s host."""
    host = urlsplit(url).hostname or ""
    allowlist = [entry.strip() for entry in settings.KEELSON_CLUSTER_URL_ALLOWLIST if entry.strip()]
    networks, names = [], []
    for entry in allowlist:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry.lower())
    addresses = _addresses(host)
    named = any(
        host.lower() == name or (name.startswith("*.") and host.lower().endswith(name[1:]))
        for name in names
    )
    for address in addresses:
        listed = named or any(address in network for network in networks)
        narrow = any(address in network and network.prefixlen >= 16 for network in networks)
        if any(address in network for network in ALWAYS_DENIED) and not narrow:
            raise EgressDenied(
                f"{host} resolves to {address}, a link-local or unspecified address."
            )
        if address.is_loopback and not (listed or settings.KEELSON_CLUSTER_ALLOW_LOOPBACK):
            raise EgressDenied(
                f"{host} is a loopback address; list it in KEELSON_CLUSTER_URL_ALLOWLIST "
                "to allow it."
            )
        if allowlist and not listed and not address.is_loopback:
            raise EgressDenied(f"{host} ({address}) is not in KEELSON_CLUSTER_URL_ALLOWLIST.")
    if allowlist and not addresses and not named:
        raise EgressDenied(f"{host} is not in KEELSON_CLUSTER_URL_ALLOWLIST.")
