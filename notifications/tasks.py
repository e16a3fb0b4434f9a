"""Celery tasks of notifications: take ids, never objects."""

from __future__ import annotations

from celery import shared_task
from django.core.mail import get_connection

from accounts.models import Account, AuditEvent, Membership, User
from notifications import emails
from notifications.alerts import subject_of


@shared_task(name="notifications.tasks.send_alert_emails", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_alert_emails(batch: list[list[object]]) -> int:
    """Sends the alert e-mails chosen in the events' transaction (`batch`: [event id, [user ids]]),
    one message per person and event, over one connection. Returns how many it sent."""
    wanted = [(int(pk), [int(u) for u in users]) for pk, users in batch]  # type: ignore[call-overload, attr-defined]
    events = AuditEvent.objects.select_related("account", "related_account").in_bulk([pk for pk, _ in wanted])
    users = User.objects.in_bulk({u for _, ids in wanted for u in ids})
    subjects = {pk: subject_of(event)[0] for pk, event in events.items()}
    managers = Account.objects.in_bulk({s.manager_id for s in subjects.values() if s.manager_id is not None})
    own = set(
        Membership.objects.filter(user_id__in=users, account_id__in={s.pk for s in subjects.values()}).values_list(
            "user_id", "account_id"
        )
    )
    messages = []
    for pk, user_ids in wanted:
        event = events.get(pk)
        if event is None:
            continue
        subject = subjects[pk]
        for user_id in user_ids:
            user = users.get(user_id)
            if user is None or not user.is_active:
                continue
            manager = None if (user_id, subject.pk) in own else managers.get(subject.manager_id or 0)
            messages.append(emails.message_for(event, user=user, subject=subject, manager=manager))
    if not messages:
        return 0
    return get_connection().send_messages(messages) or 0
