"""allauth's MFA adapter with its secrets encrypted at rest.

allauth passes every TOTP secret and recovery-code seed through `encrypt` before it stores it and
through `decrypt` when it reads it back. We encrypt with Fernet (AES-128-CBC with HMAC-SHA256, from
`cryptography`) under settings.MFA_ENCRYPTION_KEYS: the first key encrypts, any of them decrypts, so
a key can be rotated. Stored values carry a `fernet:` prefix; a value without it was written before
encryption and is read as it is, until portal/migrations/0001_encrypt_mfa_secrets encrypts it.
"""

from __future__ import annotations

from allauth.account.authentication import get_authentication_records
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

PREFIX = "fernet:"
# The second factors that allauth asks for at sign-in (recovery codes only back them up).
SECOND_FACTORS = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]


def has_second_factor(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(is_mfa_enabled(user, SECOND_FACTORS))


def session_passed_mfa(request: HttpRequest) -> bool:
    """allauth records each authentication step of a session for its user (the records are dropped
    when another user signs in); an "mfa" step means the session passed a second factor, at sign-in
    or in a later reauthentication. A session signed in some other way, or before the user had an
    authenticator, has none."""
    user = request.user
    records = get_authentication_records(request, user) if user.is_authenticated else []
    return any(record.get("method") == "mfa" for record in records) and has_second_factor(user)


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.MFA_ENCRYPTION_KEYS])


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt_secret(text: str) -> str:
    return PREFIX + _fernet().encrypt(text.encode()).decode("ascii")


def decrypt_secret(stored: str) -> str:
    if not is_encrypted(stored):
        return stored  # plaintext from before encryption; the migration encrypts what it finds
    try:
        return _fernet().decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "An MFA secret cannot be decrypted with MFA_ENCRYPTION_KEY: keep the key it was written "
            "with in the list (after the new one) when rotating."
        ) from None


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)
