from datetime import UTC, date, datetime, timedelta

from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import billed_parties
from billing.usage.services import ingest_usage

OCTOBER = date(2026, 10, 1)


def test_a_manager_is_billed_for_its_rollup_accounts_usage_even_when_created_after_the_month(world):
    Account.objects.filter(pk__in=[world.manager.pk, world.managed.pk]).update(
        created_at=datetime(2026, 11, 20, tzinfo=UTC)
    )
    ingest_usage(
        submitter=world.manager,
        rows=[
            {
                "account": str(world.managed.public_id),
                "product": "sms.outbound",
                "quantity": "3",
                "started_at": (datetime(2026, 10, 15, tzinfo=UTC) + timedelta(hours=1)).isoformat(),
                "idempotency_key": "late-manager",
            }
        ],
        source="api",
        actor=Actor(user=world.users["owner"]),
    )

    parties = set(billed_parties(OCTOBER))

    assert world.manager in parties
    assert world.managed not in parties  # roll-up: billed on its manager's invoice
