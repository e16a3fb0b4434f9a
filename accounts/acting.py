"""Logging in as a managed account, on top of django-hijack.

hijack switches the session's user (keeping the session's age, not touching last_login, and
keeping the real person's id in `hijack_history`); this module adds what hijack does not know:
which managed account is being acted in, the time limit, and the audit events. It also keeps what
hijack does not check after the switch: every acting request re-checks the real person's password
(their session auth hash as it was when acting began) and the log-in-as rule, and the session never
outlives the expiry it had before the first log-in-as.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from hijack import signals as hijack_signals
from hijack.views import get_used_backend, keep_session_age

from accounts import audit
from accounts.actor import Actor, request_user
from accounts.models import Account, User
from accounts.permissions import acting_facts, log_in_as_rule

SESSION_KEY = "acting"
# The instant the session ends, pinned by the first log-in-as and carried over every switch after it,
# so log-in-as and Return never extend it (a browser-close session keeps no fixed expiry of its own).
ENDS_AT_KEY = "session_ends_at"


@dataclass(frozen=True)
class ActingSession:
    real_user_id: int
    managed_account_id: int
    manager_account_id: int
    expires_at: datetime
    real_user_hash: str  # the real person's session auth hash when acting began

    @cached_property
    def real_user(self) -> User:
        return User.objects.get(pk=self.real_user_id)

    def real_user_unchanged(self) -> bool:
        """The real person is still active and has not changed their password since acting began."""
        user = User.objects.filter(pk=self.real_user_id).first()
        if user is None:
            return False
        self.__dict__["real_user"] = user  # the banner and the audit need it too: one query
        return user.is_active and constant_time_compare(self.real_user_hash, user.get_session_auth_hash())

    @cached_property
    def managed_account(self) -> Account:
        return Account.objects.select_related("manager").get(pk=self.managed_account_id)

    @property
    def expired(self) -> bool:
        return timezone.now() >= self.expires_at

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))


class ActingRequest(HttpRequest):
    """A request as ActingMiddleware leaves it: `acting` is set while a manager acts as a managed
    account. For the type checker only (Django builds plain HttpRequests)."""

    acting: ActingSession | None


class SignedInRequest(ActingRequest):
    """A request to a @login_required page: someone is signed in. For the type checker only."""

    user: User


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
        real_user_hash=state.get("real_user_hash", ""),
    )


@dataclass(frozen=True)
class Ending:
    """Why an acting session ends on this request: `reason` for the audit log, `message` for the
    person; `sign_out` when even the real person's own session must not go on."""

    reason: str
    message: str
    sign_out: bool = False
    detail: str | None = None


def lapse(request: HttpRequest, state: ActingSession) -> Ending | None:
    """Why the acting session cannot go on, or None: checked on every acting request, in two queries
    (the real person; the rule's memberships, which also give the banner its managed account)."""
    if not state.real_user_unchanged():
        return Ending(
            "password_changed",
            "Your password or sign-in changed since you logged in as a managed account, "
            "so that session has ended. Sign in again.",
            sign_out=True,
        )
    if state.expired:
        name = state.managed_account.name
        return Ending("expired", f"Your session as {name} reached its time limit; you are back in your own account.")
    acted_as = request_user(request)
    assert acted_as is not None, "an acting session is always signed in"
    facts = acting_facts(
        real_user_id=state.real_user_id,
        acted_as=acted_as,
        manager_id=state.manager_account_id,
        managed_account_id=state.managed_account_id,
    )
    state.__dict__["managed_account"] = facts.managed_account
    denial = log_in_as_rule(facts)
    if denial is None:
        return None
    name = facts.managed_account.name
    message = f"Your session as {name} has ended: {denial.message} You are back in your own account."
    return Ending(denial.code, message, detail=denial.message)


def session_ends_at(request: HttpRequest) -> datetime:
    """When the session ends if nothing extends it: the end an earlier log-in-as pinned, else the
    expiry its store holds (database sessions), else its age from now. Read before hijack's switch,
    which flushes the session."""
    pinned = request.session.get(ENDS_AT_KEY)
    if pinned:
        return datetime.fromisoformat(pinned)
    if not isinstance(request.session.get("_session_expiry"), str | datetime):  # a sliding age
        stored = _stored_expiry(request.session)
        if stored is not None:
            return stored
    return request.session.get_expiry_date()


def _stored_expiry(session: SessionBase) -> datetime | None:
    get_model_class = getattr(session, "get_model_class", None)  # the db and cached_db stores
    if get_model_class is None or not session.session_key:
        return None
    rows = get_model_class().objects.filter(session_key=session.session_key)
    expiry: datetime | None = rows.values_list("expire_date", flat=True).first()
    return expiry


def _pin_session_end(session: SessionBase, ends_at: datetime) -> None:
    session[ENDS_AT_KEY] = ends_at.isoformat()
    if not session.get_expire_at_browser_close():
        session.set_expiry(ends_at)  # the stored session and its cookie end then too


def session_outlived(request: HttpRequest) -> bool:
    """The session has passed the end its first log-in-as pinned (a browser-close session, whose
    store would otherwise keep extending it)."""
    pinned = request.session.get(ENDS_AT_KEY)
    return isinstance(pinned, str) and timezone.now() >= datetime.fromisoformat(pinned)


def begin(request: HttpRequest, *, real_user: User, managed: Account, session_ends_at: datetime) -> None:
    """Called right after hijack switched the session to the managed account's owner;
    `session_ends_at` is what `session_ends_at()` said before the switch."""
    expires_at = min(timezone.now() + timedelta(minutes=settings.ACTING_MAX_MINUTES), session_ends_at)
    request.session[SESSION_KEY] = {
        "managed_account_id": managed.pk,
        "manager_account_id": managed.manager_id,
        "expires_at": expires_at.isoformat(),
        "real_user_hash": real_user.get_session_auth_hash(),
    }
    _pin_session_end(request.session, session_ends_at)
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=Actor(user=real_user, acting_as=request_user(request), ip_address=request.META.get("REMOTE_ADDR")),
        change_type=audit.ChangeType.LOG_IN_AS_STARTED,
        resource=managed,
    )


@transaction.atomic
def end(request: HttpRequest, *, reason: str, detail: str | None = None) -> ActingSession:
    """Switch back to the real person; `reason` is "returned", "expired" or the code of the
    log-in-as rule that no longer holds (`detail` says it in words). Callers check `lapse` first:
    never after the real person's password changed."""
    state = current(request)
    assert state is not None, "end() called outside a log-in-as session"
    acted_as = request_user(request)
    real_user = state.real_user
    history = request.session["hijack_history"][:-1]
    ends_at = request.session.get(ENDS_AT_KEY)
    backend = get_used_backend(request)
    with hijack_signals.no_update_last_login(), keep_session_age(request.session):
        login(request, real_user, backend=f"{backend.__module__}.{backend.__class__.__name__}")
    request.session["hijack_history"] = history
    request.session.pop(SESSION_KEY, None)
    if ends_at:
        request.session[ENDS_AT_KEY] = ends_at  # login() flushed it (another user); Return extends nothing
    hijack_signals.hijack_ended.send(sender=None, request=request, hijacker=real_user, hijacked=acted_as)
    managed = state.managed_account
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=Actor(user=real_user, acting_as=acted_as, ip_address=request.META.get("REMOTE_ADDR")),
        change_type=audit.ChangeType.LOG_IN_AS_ENDED,
        resource=managed,
        changes=_ending_changes(reason, detail),
    )
    return state


@transaction.atomic
def sign_out(request: HttpRequest, *, reason: str) -> ActingSession:
    """End the acting session without switching back: the session is flushed and the real person
    signs in again (their password changed, or they were deactivated)."""
    state = current(request)
    assert state is not None, "sign_out() called outside a log-in-as session"
    managed = state.managed_account
    real_user = User.objects.filter(pk=state.real_user_id).first()
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=Actor(user=real_user, acting_as=request_user(request), ip_address=request.META.get("REMOTE_ADDR")),
        change_type=audit.ChangeType.LOG_IN_AS_ENDED,
        resource=managed,
        changes=_ending_changes(reason, None),
    )
    logout(request)
    return state


def _ending_changes(reason: str, detail: str | None) -> list[audit.FieldChange]:
    changes: list[audit.FieldChange] = [{"field": "reason", "from": None, "to": reason}]
    if detail:
        changes.append({"field": "detail", "from": None, "to": detail})
    return changes
