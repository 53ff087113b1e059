"""Who may read `/metrics`: a bearer token and/or allowed networks (KEELSON_METRICS_*).

With neither configured the endpoint does not exist (404). With both, a scrape must come
from an allowed network and carry the token. The client address is REMOTE_ADDR, which the
web server sets from X-Forwarded-For only for KEELSON_TRUSTED_PROXIES (fleet/webserver.py).
"""

from __future__ import annotations

import hmac
import ipaddress
from enum import Enum

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(Enum):
    ALLOWED = "allowed"
    DISABLED = "disabled"  # 404
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403


def _address_allowed(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def verdict(request: HttpRequest) -> Verdict:
    token: str = settings.KEELSON_METRICS_TOKEN
    networks: list[Network] = settings.KEELSON_METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        return Verdict.DISABLED
    if networks and not _address_allowed(request.META.get("REMOTE_ADDR", ""), networks):
        return Verdict.FORBIDDEN
    if token:
        given = _bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return Verdict.UNAUTHENTICATED
    return Verdict.ALLOWED
