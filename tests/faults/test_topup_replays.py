"""Replays of one accepted top-up's confirmation: the browser's return and Stripe's webhook, mixed,
1,000 times, in order and (on PostgreSQL) at once. The account is credited exactly once, and its
cached balance stays the sum of its ledger entries."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import Payment
from tests.payments_support import add_card, confirmed_but_unsettled, signed_event, top_up_entries

pytestmark = pytest.mark.usefixtures("localstripe")

REPLAYS = 1000


def _replay(client: Client, kind: str, return_url: str, body: str, signature: str) -> int:
    if kind == "return":
        return client.get(return_url).status_code
    url = reverse("stripe_webhook")
    return client.post(url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature).status_code


def _accepted_top_up(world, localstripe):
    account, owner = world.standard, world.users["standard_owner"]
    card = add_card(localstripe, account, owner)
    payment, intent = confirmed_but_unsettled(account, owner, card, "42.42")
    body, signature = signed_event(intent)
    return_url = reverse("payment_detail", args=[account.public_id, payment.public_id])
    return account, owner, payment, return_url, body, signature


def _assert_credited_once(account, payment) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert top_up_entries(account).count() == 1
    assert top_up_entries(account).get().amount == Decimal("42.42")
    assert AuditEvent.objects.filter(change_type="top_up.succeeded", account=account).count() == 1
    assert ledger.balance_of(account).amount == ledger_selectors.ledger_sum(account) == Decimal("42.42")


@pytest.mark.django_db
def test_a_thousand_mixed_replays_credit_once(world, localstripe):
    account, owner, payment, return_url, body, signature = _accepted_top_up(world, localstripe)
    client = Client()
    client.force_login(owner)
    kinds = ["return", "webhook"] * (REPLAYS // 2)
    random.Random(4).shuffle(kinds)
    statuses = [_replay(client, kind, return_url, body, signature) for kind in kinds]
    assert statuses == [200] * REPLAYS
    _assert_credited_once(account, payment)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_thousand_replays_from_four_threads_at_once_credit_once(world, localstripe):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    account, owner, payment, return_url, body, signature = _accepted_top_up(world, localstripe)
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def run(n: int) -> None:
        client = Client()
        client.force_login(owner)
        kinds = ["return", "webhook"] * (REPLAYS // threads_count // 2)
        random.Random(n).shuffle(kinds)
        try:
            barrier.wait(timeout=20)
            statuses.extend(_replay(client, kind, return_url, body, signature) for kind in kinds)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert statuses == [200] * REPLAYS
    _assert_credited_once(account, payment)
