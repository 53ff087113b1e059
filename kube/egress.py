"""The egress policy (SSRF protection) lives in core/egress.py so that every layer that
connects out (member clusters here, notification webhooks below) asks the same one; this
module keeps the names the Kubernetes code imports."""

from core.egress import (
    ALWAYS_DENIED,
    LOOPBACK,
    MAX_URL_LENGTH,
    EgressDenied,
    Server,
    check_egress,
    checked_addresses,
    embedded_ipv4,
    guard_pools,
    open_connection,
    parse_server,
)

__all__ = [
    "ALWAYS_DENIED",
    "LOOPBACK",
    "MAX_URL_LENGTH",
    "EgressDenied",
    "Server",
    "check_egress",
    "checked_addresses",
    "embedded_ipv4",
    "guard_pools",
    "open_connection",
    "parse_server",
]
