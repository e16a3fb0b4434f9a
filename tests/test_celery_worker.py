"""A real Celery worker takes a task off the configured broker: the file-system broker on the
embedded defaults, Redis in .ci/run's second pass. The rest of the suite runs tasks eagerly."""

import time

import pytest

from accounts.actor import Actor
from accounts.services import invite_member
from portal.celery import app


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_the_invitation_email_through_the_broker(world, real_worker, mailoutbox):
    invitation = invite_member(
        account=world.manager, email="newcomer@example.com", role="reporting", actor=Actor(user=world.users["owner"])
    )

    deadline = time.monotonic() + 20
    while not mailoutbox and time.monotonic() < deadline:
        time.sleep(0.1)

    assert [m.to for m in mailoutbox] == [["newcomer@example.com"]]
    assert f"/invitations/{invitation.token}/" in mailoutbox[0].body
    print(f"broker: {app.conf.broker_url.split('://')[0]}")
