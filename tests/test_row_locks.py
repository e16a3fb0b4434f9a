"""The one way rows are locked (accounts.locks): FOR NO KEY UPDATE, which serialises the lockers of a
row with each other but leaves alone the foreign-key checks of rows that reference it. Found by the
reference benchmark: a spend-limit check holding its accounts FOR UPDATE, and usage batches of the
same accounts committing (PostgreSQL's deferred foreign-key checks take FOR KEY SHARE on each
account their records reference), deadlocked, and a POST /v2/usage_records answered 500."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.locks import lock_rows
from accounts.models import Account
from billing.models import UsageRecord
from billing.usage.services import ingest_usage

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_locked_account_still_takes_usage_and_two_lockers_still_queue(catalogue, world):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    account = world.standard
    locked, release = threading.Event(), threading.Event()
    second_locker_in = threading.Event()

    def hold() -> None:  # as controls.services.check_accounts holds its accounts
        try:
            with transaction.atomic():
                lock_rows(Account.objects.filter(pk=account.pk))
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    def ingest() -> None:
        try:
            row = {
                "product": "sms.outbound",
                "quantity": "1",
                "started_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
                "idempotency_key": "while-locked",
            }
            # Returns once its after-commit work is done too (tasks run eagerly here): the limit
            # check it queues waits for the lock, as it must. The batch itself committed before.
            ingest_usage(submitter=account, rows=[row], source="api", actor=Actor.platform_staff())
        finally:
            connection.close()

    def lock_again() -> None:
        try:
            with transaction.atomic():
                lock_rows(Account.objects.filter(pk=account.pk))
                second_locker_in.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(timeout=10)
    threads = [threading.Thread(target=ingest), threading.Thread(target=lock_again)]
    for thread in threads:
        thread.start()
    try:
        stored = UsageRecord.objects.filter(account=account, idempotency_key="while-locked")
        deadline = time.monotonic() + 10
        while not stored.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored.exists(), "a usage batch waited for the account's lock (its foreign-key check) to commit"
        assert not second_locker_in.wait(timeout=1), "a second locker did not wait for the first"
    finally:
        release.set()
        holder.join(timeout=20)
        for thread in threads:
            thread.join(timeout=20)
    assert second_locker_in.is_set()
