"""`filter[status][eq]=blocked` on GET /v2/managed_accounts lists every managed account that gets no
new service: disabled ones, and enabled ones that a spend limit or exhausted credit blocked (their
own, or for a roll-up account its manager's), exactly those whose record says
`service_status: "blocked"`; a block whose period ended is over."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import Account
from tests.factories import account_with_owner


def _ids(api, status: str) -> set[str]:
    response = api.get("managed_accounts", {"filter[status][eq]": status, "page[size]": "250"})
    assert response.status_code == 200, response.content
    return {record["id"] for record in response.json()["data"]}


def test_blocked_lists_disabled_and_service_blocked_accounts_as_their_records_say(world, make_key, raw_api):
    manager = world.manager
    separate = {
        name: account_with_owner(name=name, managed_kind=True, manager=manager,
                                 billing_mode=Account.BillingMode.SEPARATE)[0]
        for name in ("Over Limit", "Out Of Credit", "Block Over", "Still Fine", "Disabled One")
    }  # fmt: skip
    later = timezone.now() + timedelta(days=3)
    Account.objects.filter(pk=separate["Over Limit"].pk).update(
        service_blocked_reason="spend_limit", service_blocked_until=later
    )
    Account.objects.filter(pk=separate["Out Of Credit"].pk).update(service_blocked_reason="credit_exhausted")
    Account.objects.filter(pk=separate["Block Over"].pk).update(
        service_blocked_reason="spend_limit", service_blocked_until=timezone.now() - timedelta(minutes=1)
    )
    Account.objects.filter(pk=separate["Disabled One"].pk).update(status=Account.Status.DISABLED)
    api = raw_api(make_key(manager))

    blocked = _ids(api, "blocked")
    expected = {str(separate[n].public_id) for n in ("Over Limit", "Out Of Credit", "Disabled One")}
    assert blocked == expected
    records = api.get("managed_accounts", {"filter[status][eq]": "all", "page[size]": "250"}).json()["data"]
    assert blocked == {r["id"] for r in records if r["service_status"] == "blocked"}

    # The manager's own credit runs out: its roll-up accounts are blocked with it, the separate ones not.
    Account.objects.filter(pk=manager.pk).update(service_blocked_reason="credit_exhausted")
    rollup = {str(world.managed.public_id), str(world.sibling.public_id)}
    assert _ids(api, "blocked") == expected | rollup
    records = api.get("managed_accounts", {"filter[status][eq]": "all", "page[size]": "250"}).json()["data"]
    assert _ids(api, "blocked") == {r["id"] for r in records if r["service_status"] == "blocked"}
    assert _ids(api, "disabled") == {str(separate["Disabled One"].public_id)}  # ours: the status alone
