"""A name with HTML in it, in the e-mails the portal sends (issue 11, hole 1; the pages and the PDF
are in tests/browser/test_hostile_names.py).

The e-mails are plain text: a name is written as typed, never HTML-escaped (which would print
`&lt;` to the reader) and never sent as an HTML part a mail client would render.
"""

from __future__ import annotations

from django.core import mail

from accounts.actor import Actor
from accounts.models import Account, Role
from accounts.services import invite_member

HOSTILE = 'Alpine<img src=x onerror="window.__xss=1"> & "Sons"'


def test_hole_1_account_name_in_the_invitation_email_is_plain_text(world, django_capture_on_commit_callbacks):
    Account.objects.filter(pk=world.managed.pk).update(name=HOSTILE)
    world.managed.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        invite_member(
            account=world.managed,
            email="newcomer@example.com",
            role=Role.REPORTING,
            actor=Actor(user=world.users["managed_owner"]),
        )

    [message] = mail.outbox
    assert message.subject == f"You are invited to {HOSTILE} on Mission Control"
    assert f"invited you to join {HOSTILE} on Mission Control" in message.body
    assert "&lt;" not in message.body and "&amp;" not in message.body and "&quot;" not in message.body
    assert message.content_subtype == "plain"
    assert getattr(message, "alternatives", []) == []  # no HTML part
