"""One HTTP POST of a delivery: to the address the check allowed (no second lookup that could
answer otherwise), with a short timeout, never following a redirect (a 3xx is a failed attempt)."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from django.conf import settings

from webhooks.addresses import AddressRefused, Target, resolve

RESPONSE_EXCERPT = 500  # characters of the receiver's answer kept for the delivery log


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the receiver's HTTP status; None when none came back
    error: str  # why the attempt failed, "" when it succeeded

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5))


def post(*, url: str, body: str, headers: dict[str, str]) -> Outcome:
    try:
        target = resolve(url)
    except AddressRefused as refused:
        return Outcome(None, refused.message)
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, target.addresses[0], timeout_seconds())
    try:
        connection.request(
            "POST",
            target.path,
            body=body.encode(),
            headers={**headers, "Content-Type": "application/json", "User-Agent": "MissionControl-Webhooks/1"},
        )
        response = connection.getresponse()
        response.read(RESPONSE_EXCERPT)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT])
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return Outcome(response.status, "")
    return Outcome(response.status, f"The receiver answered HTTP {response.status}.")
