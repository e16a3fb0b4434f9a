"""A real Celery worker takes a task off the configured broker: the file-system broker on the
embedded defaults, Redis in .ci/run's second pass. The rest of the suite runs tasks eagerly."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from accounts.actor import Actor
from accounts.services import invite_member
from portal.celery import app


@pytest.fixture
def real_worker():
    app.conf.task_always_eager = False
    app.control.purge()
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


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
