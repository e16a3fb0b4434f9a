import threading

import pytest
from django.db import connection

from accounts.actor import Actor
from accounts.models import Account
from accounts.services import ManagedAccountLimitReached, active_managed_count, create_managed_account
from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

pytestmark = pytest.mark.postgres


def _race(manager: Account, actor: Actor, round_no: int) -> list:
    barrier = threading.Barrier(2)
    outcomes: list = []

    def create(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            create_managed_account(
                manager=manager,
                name=f"Racer {round_no}-{n}",
                owner_email=f"racer{round_no}-{n}@example.com",
                owner_password=None,
                billing_mode=Account.BillingMode.ROLLUP,
                allow_custom_pricing=False,
                pricing_hidden=False,
                actor=actor,
            )
            outcomes.append("created")
        except ManagedAccountLimitReached:
            outcomes.append("limit")
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_creations_racing_at_limit_minus_one_end_at_exactly_the_limit():
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    manager, owner = account_with_owner(manager_kind=True, managed_account_limit=10)
    make_managed_accounts(manager, 9)
    for round_no in range(5):
        outcomes = _race(manager, Actor(user=owner), round_no)
        assert sorted(outcomes) == ["created", "limit"], outcomes
        assert active_managed_count(manager) == manager.managed_account_limit
        # Make room for the next round: raise the limit by one, as staff would.
        Account.objects.filter(pk=manager.pk).update(managed_account_limit=manager.managed_account_limit + 1)
        manager.refresh_from_db()
