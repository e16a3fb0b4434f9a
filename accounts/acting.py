"""Logging in as a managed account, on top of django-hijack.

hijack switches the session's user (keeping the session's age, not touching last_login, and
keeping the real person's id in `hijack_history`); this module adds what hijack does not know:
which managed account is being acted in, the time limit, and the audit events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.contrib.auth import login
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from hijack import signals as hijack_signals
from hijack.views import get_used_backend, keep_session_age

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account, User

SESSION_KEY = "acting"


@dataclass(frozen=True)
class ActingSession:
    real_user_id: int
    managed_account_id: int
    manager_account_id: int
    expires_at: datetime

    @cached_property
    def real_user(self) -> User:
        return User.objects.get(pk=self.real_user_id)

    @cached_property
    def managed_account(self) -> Account:
        return Account.objects.select_related("manager").get(pk=self.managed_account_id)

    @property
    def expired(self) -> bool:
        return timezone.now() >= self.expires_at

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))


def current(request: HttpRequest) -> ActingSession | None:
    history = request.session.get("hijack_history")
    state = request.session.get(SESSION_KEY)
    if not history or not state:
        return None
    return ActingSession(
        real_user_id=int(history[-1]),
        managed_account_id=state["managed_account_id"],
        manager_account_id=state["manager_account_id"],
        expires_at=datetime.fromisoformat(state["expires_at"]),
    )


def begin(request: HttpRequest, *, real_user: User, managed: Account) -> None:
    """Called right after hijack switched the session to the managed account's owner."""
    expires_at = timezone.now() + timedelta(minutes=settings.ACTING_MAX_MINUTES)
    request.session[SESSION_KEY] = {
        "managed_account_id": managed.pk,
        "manager_account_id": managed.manager_id,
        "expires_at": expires_at.isoformat(),
    }
    audit.record(
        account=managed.manager,
        related_account=managed,
        actor=Actor(user=real_user, acting_as=request.user, ip_address=request.META.get("REMOTE_ADDR")),
        change_type=audit.ChangeType.LOG_IN_AS_STARTED,
        resource=managed,
    )


@transaction.atomic
def end(request: HttpRequest, *, reason: str) -> ActingSession:
    """Switch back to the real person; `reason` is "returned" or "expired"."""
    state = current(request)
    assert state is not None, "end() called outside a log-in-as session"
    acted_as = request.user
    real_user = state.real_user
    history = request.session["hijack_history"][:-1]
    backend = get_used_backend(request)
    with hijack_signals.no_update_last_login(), keep_session_age(request.session):
        login(request, real_user, backend=f"{backend.__module__}.{backend.__class__.__name__}")
    request.session["hijack_history"] = history
    request.session.pop(SESSION_KEY, None)
    hijack_signals.hijack_ended.send(sender=None, request=request, hijacker=real_user, hijacked=acted_as)
    managed = state.managed_account
    audit.record(
        account=managed.manager,
        related_account=managed,
        actor=Actor(user=real_user, acting_as=acted_as, ip_address=request.META.get("REMOTE_ADDR")),
        change_type=audit.ChangeType.LOG_IN_AS_ENDED,
        resource=managed,
        changes=[{"field": "reason", "from": None, "to": reason}],
    )
    return state
