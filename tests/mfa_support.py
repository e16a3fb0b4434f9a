"""What the MFA tests share: a TOTP authenticator made as allauth makes one (so its secret goes
through our MFA adapter), the current code of a secret, and a staff session that passed MFA."""

from __future__ import annotations

import time

from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.account.internal.flows.login import _AUTHENTICATION_METHODS_USER_SESSION_KEY
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client

from accounts.models import User


def add_totp(user: User) -> tuple[Authenticator, str]:
    """A TOTP authenticator for `user`, activated through allauth; returns it and its plain secret."""
    secret = generate_totp_secret()
    return TOTP.activate(user, secret).instance, secret


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def force_login_with_mfa(client: Client, user: User) -> Authenticator:
    """Sign `user` in the way a completed password + TOTP sign-in leaves the session: allauth's
    authentication records name a password step and an MFA step for this user."""
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        authenticator, _ = add_totp(user)
    client.force_login(user)
    session = client.session
    now = time.time()
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "password", "at": now, "email": user.email},
        {"method": "mfa", "at": now, "id": authenticator.pk, "type": Authenticator.Type.TOTP},
    ]
    session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
    session.save()
    return authenticator
