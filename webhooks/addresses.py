"""Where a webhook may go: an http(s) URL and, in production, only to public addresses (no
loopback, private, link-local or other special ones: SSRF). Checked when an endpoint is saved and
again at every delivery, on the addresses the host resolves to then, which are the ones connected to."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

SCHEMES = {"http": 80, "https": 443}


class AddressRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query
    addresses: list[str]  # what the host resolved to, all of them allowed


def private_refused() -> bool:
    """Only production refuses private addresses: development and tests deliver on loopback."""
    return bool(settings.PRODUCTION)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL, or AddressRefused saying what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressRefused("Enter a valid URL.") from None
    if parts.scheme not in SCHEMES:
        raise AddressRefused("Webhooks are delivered only to http:// or https:// URLs.")
    if not parts.hostname:
        raise AddressRefused("The URL has no host.")
    if parts.username or parts.password:
        raise AddressRefused("Leave user names and passwords out of the URL: deliveries are signed instead.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or SCHEMES[parts.scheme], path


def resolve(url: str) -> Target:
    """The URL's target with the addresses to connect to; AddressRefused when it may not be used."""
    scheme, host, port, path = parse(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressRefused(f"The host {host} cannot be found.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if private_refused() and not all(is_public(a) for a in addresses):
        raise AddressRefused(f"The host {host} is a private, loopback or link-local address; use a public one.")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)
