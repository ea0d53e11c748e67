"""Where the hub may send requests: the guard against server-side request forgery.

A store's base URL comes from a user, and the URLs a platform hands back (upload targets,
result files, pre-signed documents) come from whoever answers at that base URL. Left
unchecked, "test connection" or any job would make the hub call its own network: the cloud
metadata service (169.254.169.254), a database on 10.x, the hub's own loopback services.

:meth:`EgressPolicy.vet` is the one check, and the HTTP helper (``fusion/plugins/http.py``)
runs it before every request it sends: the URL is parsed with urllib3's own parser (the one
the connection will use), the host resolved once, every address it resolves to classified
(:func:`address_kind`), the port checked, and the connection then made to the vetted address
itself, so a second lookup cannot rebind the name elsewhere. Refused: loopback, private,
link-local, shared (100.64/10), multicast, reserved and unspecified addresses, and every form
that embeds an IPv4 address in IPv6 (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), since
a gateway would carry them to 10.x. Only ports 80 and 443 unless ``FUSION_EGRESS_PORTS`` adds
others. Outside production ``FUSION_ALLOW_PRIVATE_EGRESS`` lifts the address and port rules
(the sandboxes listen on loopback ports); ``FUSION_EGRESS_ALLOW`` lifts them for exact
``host:port`` destinations only. Requests never follow redirects, so a 30x cannot lead
elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from fusion.errors import PermanentError

if TYPE_CHECKING:
    from fusion.config import Settings

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
STANDARD_PORTS = frozenset({80, 443})

# A resolver answers the addresses of (host, port); the system's by default. Tests hand in
# their own to show that a name is looked up once (DNS rebinding).
Resolver = Callable[[str, int], Sequence[str]]

_V4_REFUSED = (
    # Named apart from what ``is_private`` covers: carrier-grade NAT, the IETF protocol
    # block and the 6to4 relay.
    (ipaddress.ip_network("100.64.0.0/10"), "shared"),
    (ipaddress.ip_network("192.0.0.0/24"), "reserved"),
    (ipaddress.ip_network("192.88.99.0/24"), "6to4"),
)
_V6_REFUSED = (
    # Forms that carry an IPv4 address (a gateway would take it to 10.x or 127.x), then the
    # special-purpose blocks inside the global unicast range.
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "NAT64"),
    (ipaddress.ip_network("2002::/16"), "6to4"),
    (ipaddress.ip_network("2001::/32"), "Teredo"),
    (ipaddress.ip_network("2001::/23"), "reserved"),
    (ipaddress.ip_network("2001:db8::/32"), "reserved"),
    (ipaddress.ip_network("3fff::/20"), "reserved"),
)
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


class EgressRefused(PermanentError):
    """The destination is not one the hub may call."""


def address_kind(address: str) -> str | None:
    """None when ``address`` (an IPv4 or IPv6 literal, with or without a ``%scope``) is a
    public unicast address the hub may connect to; otherwise what it is ("loopback",
    "private", "link-local", "multicast", "unspecified", "reserved", "IPv4-mapped", "NAT64",
    "6to4", "Teredo", ...). Raises ValueError when it is no IP address at all."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "IPv4-mapped"
        for network, kind in _V6_REFUSED:
            if ip in network:
                return kind
    else:
        for network4, kind in _V4_REFUSED:
            if ip in network4:
                return kind
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _V6_GLOBAL_UNICAST:
        # IPv4-compatible ::a.b.c.d, site-local fec0::/10, unique-local fc00::/7 and the rest
        # of the unassigned space: only 2000::/3 is global unicast.
        return "private" if ip.is_private or ip.is_site_local else "reserved"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the system's order (each once)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Destination:
    """A vetted destination: connect to ``address`` and to nothing else, announcing ``host``
    (the Host header, TLS SNI and the name the certificate must carry)."""

    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    address: str  # the one address the connection is made to

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if DEFAULT_PORTS[self.scheme] == self.port else f"{name}:{self.port}"


def destination_key(host: str, port: int) -> str:
    """``host:port`` as ``FUSION_EGRESS_ALLOW`` lists it (IPv6 in brackets, lower case)."""
    host = host.strip("[]").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class EgressPolicy:
    """The rules of one process: whether private destinations are allowed (dev and test),
    the extra ports, the exact ``host:port`` exceptions, and how names are resolved."""

    allow_private: bool = False
    ports: frozenset[int] = STANDARD_PORTS
    exceptions: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> EgressPolicy:
        """The policy ``settings`` describe (``FUSION_ALLOW_PRIVATE_EGRESS``,
        ``FUSION_EGRESS_PORTS``, ``FUSION_EGRESS_ALLOW``)."""
        return cls(
            allow_private=settings.allow_private_egress,
            ports=STANDARD_PORTS | frozenset(settings.egress_ports),
            exceptions=frozenset(settings.egress_allow),
            resolver=resolver or system_resolver,
        )

    def check(self, url: str) -> None:
        """Return if the hub may call ``url``; raise EgressRefused saying why (never echoing
        what the destination answered: nothing is sent). Where private destinations are
        allowed, the name is not resolved (it may not resolve yet where it is saved)."""
        if self.allow_private:
            self._parse(url)
        else:
            self.vet(url)

    def vet(self, url: str) -> Destination:
        """The destination to connect to for ``url``, the name resolved exactly once; raises
        EgressRefused when the URL is malformed, not http(s), carries credentials, names a
        port or an address the hub may not call, or does not resolve."""
        scheme, host, port = self._parse(url)
        exempt = self.allow_private or destination_key(host, port) in self.exceptions
        if not exempt and port not in self.ports:
            raise EgressRefused(f"port {port} is not one the hub may call")
        address = self._resolve(host, port, exempt=exempt)
        return Destination(scheme=scheme, host=host, port=port, address=address)

    def vet_host(self, host: str, port: int) -> str:
        """The one address to connect to for a non-HTTP service at ``host:port`` (the SMTP
        server): the name resolved once and every address it resolves to held to the address
        rules, as :meth:`vet` does. The port rule does not apply: such a port is the
        operator's setting, never a tenant's. Raises EgressRefused saying why."""
        host = host.strip("[]").lower()
        if not host or "%" in host:
            raise EgressRefused("the host is malformed")
        exempt = self.allow_private or destination_key(host, port) in self.exceptions
        return self._resolve(host, port, exempt=exempt)

    def _resolve(self, host: str, port: int, *, exempt: bool) -> str:
        """``host`` resolved once; the first address, when every address it resolves to is
        one the hub may call (any, when ``exempt``). Raises EgressRefused saying why."""
        try:
            addresses = [host] if _is_ip(host) else list(self.resolver(host, port))
        except (OSError, UnicodeError):
            raise EgressRefused("the host does not resolve") from None
        if not addresses:
            raise EgressRefused("the host does not resolve")
        for address in addresses:
            try:
                kind = address_kind(address)
            except ValueError:
                raise EgressRefused("the host resolves to something that is no address") from None
            if kind is not None and not exempt:
                article = "an" if kind[0].lower() in "aeiou" else "a"
                raise EgressRefused(f"the host resolves to {article} {kind} address")
        return addresses[0]

    def _parse(self, url: str) -> tuple[str, str, int]:
        try:
            parts = parse_url(url)
        except (LocationParseError, ValueError):
            raise EgressRefused("the URL is malformed") from None
        if parts.scheme not in ALLOWED_SCHEMES:
            raise EgressRefused("only http and https URLs are allowed")
        if not parts.host:
            raise EgressRefused("the URL names no host")
        if parts.auth is not None:
            raise EgressRefused("the URL carries credentials")
        host = parts.host.strip("[]").lower()
        if "%" in host:
            raise EgressRefused("the URL names a scoped address")
        return parts.scheme, host, parts.port or DEFAULT_PORTS[parts.scheme]


def check_destination(url: str, policy: EgressPolicy) -> None:
    """Return if ``url`` is an http(s) URL the hub may call under ``policy``; raise
    EgressRefused saying why (see :meth:`EgressPolicy.check`)."""
    policy.check(url)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
