"""Who is making a change: the real person, and whom they act as while logged in as a managed account."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts.models import User


def request_user(request: HttpRequest) -> User | None:
    """The signed-in user of a request, or None when nobody is signed in."""
    return request.user if request.user.is_authenticated else None


@dataclass(frozen=True)
class Actor:
    user: User | None
    acting_as: User | None = None
    ip_address: str | None = None
    platform: bool = False

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        acting = getattr(request, "acting", None)
        ip = request.META.get("REMOTE_ADDR") or None
        user = request_user(request)
        if acting is not None:
            return cls(user=acting.real_user, acting_as=user, ip_address=ip)
        return cls(user=user, ip_address=ip)

    @classmethod
    def platform_staff(cls, user: User | None = None) -> Actor:
        return cls(user=user, platform=True)
