"""Which addresses the hub may connect to (SSRF protection): member clusters' API servers
and notification webhooks.

`KEELSON_CLUSTER_URL_ALLOWLIST` lists networks (CIDR), hosts, and `*.domain` suffixes the
hub may reach; empty allows any address except the always-denied ones: link-local
(169.254.0.0/16, fe80::/10, cloud metadata services) and unspecified addresses, which only
a listed network of /16 or narrower re-allows. Loopback is denied unless listed or
`KEELSON_CLUSTER_ALLOW_LOOPBACK` is on (`make run` turns it on for the local provider).

Three rules close the ways around the check:

- An IPv6 address that carries an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
  IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
  `2002::/16`, Teredo `2001::/32`) is judged as that IPv4 address too: the kernel, a
  translator or a relay delivers it there.
- A URL is parsed once, strictly (`parse_server`): anything two URL parsers could read
  differently (userinfo, backslashes, whitespace, control or non-ASCII characters,
  percent signs in the authority, numeric host forms such as `2130706433`) is refused,
  so the host checked is the host every HTTP client connects to.
- The check runs again at every new connection (`open_connection`, used by both
  transports in client.py and http.py), which connects to the addresses it just checked:
  a name that resolved to an allowed address at registration and resolves elsewhere
  later (DNS rebinding), or a cached client whose address left the allowlist, is refused.
  TLS still verifies the certificate against the name (SNI and Host are unchanged).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
import urllib3.util.connection
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DENIED = [
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    # "This network": Linux connects 0.0.0.0 to the host itself.
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("::/128"),
]
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses
# RFC 6052 section 2.2: where the IPv4 address sits for each prefix length (bits 64-71,
# the "u" octet, are skipped). A 64:ff9b:1::/48 address may use any of these lengths.
_RFC6052_BYTES = {32: (4, 5, 6, 7), 40: (5, 6, 7, 9), 48: (6, 7, 9, 10), 56: (7, 9, 10, 11)}
_RFC6052_BYTES[64] = (9, 10, 11, 12)
_RFC6052_BYTES[96] = (12, 13, 14, 15)

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
# Characters no server URL needs and that URL parsers disagree about.
_FORBIDDEN = re.compile(r"[\\@%\s\x00-\x1f\x7f]|[^\x00-\x7f]")
MAX_URL_LENGTH = 2048


class EgressDenied(ValueError):
    """The URL points somewhere the hub must not connect to."""


@dataclass(frozen=True)
class Server:
    """A server URL as every client will read it."""

    scheme: str
    host: str  # lower case, without IPv6 brackets
    port: int
    path: str


def parse_server(url: str) -> Server:
    """Parse `url` strictly; raise EgressDenied for anything ambiguous."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise EgressDenied("The server URL is missing or too long.")
    if _FORBIDDEN.search(url):
        raise EgressDenied(
            "The server URL may not contain user information (@), backslashes, percent "
            "signs, whitespace, control or non-ASCII characters (use punycode for names)."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise EgressDenied("The server URL must be an https:// URL with a host.")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise EgressDenied("The server URL may not have a query or a fragment.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EgressDenied("The server URL's port is not a number from 1 to 65535.") from None
    host = (parts.hostname or "").lower()
    if not host or port == 0:
        raise EgressDenied("The server URL has no host or port 0.")
    _check_host_syntax(host, bracketed=parts.netloc.startswith("["))
    # The HTTP clients' own parser (urllib3's) must read the same host and port.
    theirs = urllib3.util.parse_url(url)
    their_host = (theirs.host or "").lower().strip("[]")
    if (theirs.scheme, their_host, theirs.port or port) != (parts.scheme, host, port):
        raise EgressDenied("The server URL is ambiguous: its host cannot be read one way.")
    return Server(scheme=parts.scheme, host=host, port=port, path=parts.path)


def _check_host_syntax(host: str, *, bracketed: bool) -> None:
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise EgressDenied("The server URL's [address] is not an IPv6 address.") from None
        return
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise EgressDenied("The server URL's host is not a valid DNS name or IP address.")
    try:
        socket.inet_aton(host)
    except OSError:
        return
    # `2130706433`, `0x7f.1`, `127.1`: the resolver reads these as addresses.
    raise EgressDenied("Write an IPv4 address in the server URL as four decimal numbers.")


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (empty for a plain address)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    packed = address.packed
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif address in _COMPATIBLE and int(address) > 1:  # not :: or ::1
        found.append(ipaddress.IPv4Address(packed[12:]))
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(packed[12:]))
    if address in _NAT64_LOCAL:
        for positions in _RFC6052_BYTES.values():
            found.append(ipaddress.IPv4Address(bytes(packed[i] for i in positions)))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    return found


@dataclass(frozen=True)
class _Policy:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    names: list[str]
    allow_loopback: bool

    @property
    def restricted(self) -> bool:
        return bool(self.networks or self.names)

    @classmethod
    def current(cls) -> _Policy:
        networks, names = [], []
        for entry in settings.KEELSON_CLUSTER_URL_ALLOWLIST:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry.lower())
        return cls(networks, names, bool(settings.KEELSON_CLUSTER_ALLOW_LOOPBACK))

    def named(self, host: str) -> bool:
        host = host.rstrip(".")
        return any(
            host == name or (name.startswith("*.") and host.endswith(name[1:]))
            for name in self.names
        )

    def check(self, host: str, address: IPAddress, named: bool) -> None:
        """Judge `address` as what it reaches. An IPv4-mapped or -compatible address is its
        IPv4 address (the kernel sends IPv4); a translated one (NAT64, 6to4, Teredo) is
        judged as itself and as every IPv4 address it carries, and all must pass."""
        embedded = embedded_ipv4(address)
        native = isinstance(address, ipaddress.IPv6Address) and (
            address.ipv4_mapped is not None or (address in _COMPATIBLE and int(address) > 1)
        )
        for candidate in embedded[:1] if native else [address, *embedded]:
            self._check_one(host, address, candidate, named)

    def _check_one(self, host: str, address: IPAddress, candidate: IPAddress, named: bool) -> None:
        shown = f"{address}" if candidate == address else f"{address} (that is {candidate})"
        listed = named or any(candidate in network for network in self.networks)
        narrow = any(candidate in network and network.prefixlen >= 16 for network in self.networks)
        if any(candidate in network for network in ALWAYS_DENIED) and not narrow:
            raise EgressDenied(f"{host} resolves to {shown}, a link-local or unspecified address.")
        loopback = any(candidate in network for network in LOOPBACK)
        if loopback and not (listed or self.allow_loopback):
            raise EgressDenied(
                f"{host} is a loopback address ({shown}); list it in "
                "KEELSON_CLUSTER_URL_ALLOWLIST to allow it."
            )
        if self.restricted and not listed and not loopback:
            raise EgressDenied(f"{host} ({shown}) is not in KEELSON_CLUSTER_URL_ALLOWLIST.")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def checked_addresses(host: str, port: int) -> list[IPAddress]:
    """Resolve `host` and return its addresses if the hub may connect to every one of
    them; raise EgressDenied otherwise, socket.gaierror if it does not resolve."""
    host = host.lower().strip("[]")
    if _literal(host) is None:
        _check_host_syntax(host, bracketed=False)
    policy = _Policy.current()
    named = policy.named(host)
    addresses = _resolve(host, port)
    for address in addresses:
        policy.check(host, address, named)
    return addresses


def check_egress(url: str) -> Server:
    """Raise EgressDenied if the hub may not connect to `url`'s host; the parsed URL
    otherwise. An unresolvable name passes (the connection reports it as unreachable)
    unless an allowlist is set and does not name it."""
    server = parse_server(url)
    try:
        checked_addresses(server.host, server.port)
    except socket.gaierror:
        policy = _Policy.current()
        if policy.restricted and not policy.named(server.host):
            raise EgressDenied(f"{server.host} is not in KEELSON_CLUSTER_URL_ALLOWLIST.") from None
    return server


def open_connection(
    host: str,
    port: int,
    timeout: Any,
    *,
    source_address: tuple[str, int] | None = None,
    socket_options: list[tuple[int, int, int | bytes]] | None = None,
) -> socket.socket:
    """Connect to `host` as the egress policy allows, checked now: to one of the addresses
    just resolved and checked, never to what a second resolution returns."""
    addresses = checked_addresses(host, port)
    error: OSError | None = None
    for address in addresses:
        try:
            return urllib3.util.connection.create_connection(
                (str(address), port),
                timeout,
                source_address=source_address,
                socket_options=socket_options,
            )
        except OSError as failed:
            error = failed
    raise error or OSError(f"{host} has no address")


class _GuardedConnection(HTTPConnection):
    """urllib3's connection, but the socket goes to an address the egress policy allows,
    checked at this connection: a name that resolves elsewhere since it was checked is
    refused (EgressDenied). TLS (SNI, certificate) still uses the name."""

    def _new_conn(self) -> Any:
        try:
            return open_connection(
                self._dns_host,
                self.port,
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as error:  # as urllib3 words them
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from error
        except OSError as error:
            message = f"Failed to establish a new connection: {error}"
            raise NewConnectionError(self, message) from error


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedPool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def guard_pools(pool_manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """Make every pool `pool_manager` opens check the egress policy per connection (the
    kubernetes client's, notification webhooks', Prometheus queries')."""
    pool_manager.pool_classes_by_scheme = {"http": _GuardedPool, "https": _GuardedHTTPSPool}
    return pool_manager
