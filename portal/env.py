"""Strict parsing of settings from environment variables.

A value that is present but malformed stops start-up with a message naming the variable,
instead of silently falling back to a default.
"""

import base64
import binascii
import os
from decimal import Decimal, InvalidOperation
from typing import overload

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


@overload
def env_str(name: str, default: str, *, required: bool = False) -> str: ...
@overload
def env_str(name: str, default: None = None, *, required: bool = False) -> str | None: ...
def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None and required:
        raise ImproperlyConfigured(f"{name} must be set.")
    return default if value is None else value


def env_url(name: str, default: str, *, required: bool = False) -> str:
    """An absolute http(s) origin such as https://portal.example.com (no path, no trailing slash)."""
    value = env_str(name, default, required=required).rstrip("/")
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or "/" in rest or "?" in rest or "#" in rest:
        raise ImproperlyConfigured(
            f"{name}={value!r} must look like https://portal.example.com (scheme and host only)."
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_decimal(name: str, default: str, *, minimum: str | None = None) -> Decimal:
    value = _raw(name) or default
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a decimal number.") from None
    if not number.is_finite() or (minimum is not None and number < Decimal(minimum)):
        raise ImproperlyConfigured(f"{name}={value!r} must be a number of at least {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def env_fernet_keys(name: str, default: list[str], *, required: bool = False) -> list[str]:
    """One Fernet key (32 url-safe base64 bytes, as `Fernet.generate_key()` prints), or several
    separated by commas to rotate: the first encrypts, every one decrypts."""
    value = _raw(name)
    if value is None and required:
        raise ImproperlyConfigured(f"{name} must be set.")
    keys = default if value is None else [key.strip() for key in value.split(",") if key.strip()]
    for key in keys:
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
            valid = len(raw) == 32 and base64.urlsafe_b64encode(raw).decode("ascii") == key
        except (binascii.Error, UnicodeEncodeError, ValueError):
            valid = False
        if not valid:
            raise ImproperlyConfigured(
                f"{name} must be Fernet keys (32 url-safe base64-encoded bytes each), separated by commas."
            )
    if not keys:
        raise ImproperlyConfigured(f"{name} must name at least one key.")
    return keys
