"""Where the hub may send requests: the guard against server-side request forgery.

A store's base URL comes from a user. Left unchecked, "test connection" or any job would make
the hub call its own network: the cloud metadata service (169.254.169.254), a database on
10.x, the hub's own loopback services. Outside dev/test (``FUSION_ALLOW_PRIVATE_EGRESS``
turns it off or on explicitly) every address a host resolves to must be a global unicast
address; numeric host forms (``2130706433``, ``0x7f000001``, ``127.1``) and IPv4-mapped IPv6
are resolved first, so they cannot slip through. The check runs when a URL is saved and again
before each job connects (a name may resolve differently later). Requests never follow
redirects (``fusion/plugins/http.py``), so a 30x cannot lead elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from fusion.errors import PermanentError

ALLOWED_SCHEMES = ("http", "https")
# NAT64 maps IPv4 into IPv6 and reports itself global; a NAT64 gateway would reach 10.x.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(PermanentError):
    """The destination is not one the hub may call."""


def check_destination(url: str, *, allow_private: bool) -> None:
    """Return if ``url`` is an http(s) URL the hub may call; raise EgressRefused saying why
    (never echoing what the destination answered: nothing is sent)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EgressRefused("the URL is malformed") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise EgressRefused("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise EgressRefused("the URL names no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EgressRefused("the host does not resolve") from None
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise EgressRefused("the host resolves to a private, loopback or reserved address")


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return False
    return ip.is_global and not ip.is_multicast
