"""An account's own spend limits outlive a switch back to roll-up billing, when its people lose
their limits page; its manager sees them on the managed account's limits page and removes them
(audited, naming the manager's person), while a separately billed account's own limits stay its
people's to remove."""

from __future__ import annotations

import html
import re

from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.tasks import apply_billing_mode_changes
from controls.models import SpendLimit
from tests.factories import account_with_owner
from tests.test_billing_mode_change import IN_JUNE, SWITCH
from tests.test_monthly_close import backdate, clock

OWN = {"product": "", "monthly_amount": "40.00", "daily_amount": "", "action": "block"}


def page(world, account: Account) -> str:
    return reverse("controls_managed_limit", args=[world.manager.public_id, account.public_id])


def remove_url(world, account: Account, limit: SpendLimit) -> str:
    return reverse("controls_managed_limit_remove", args=[world.manager.public_id, account.public_id, limit.public_id])


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def test_the_manager_removes_the_own_limit_a_roll_up_account_kept_from_its_separate_days(world, persona, client):
    cedar, cedar_owner = account_with_owner(
        name="Cedar Call Centre", managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    client.force_login(cedar_owner)
    assert client.post(reverse("controls_own_limits", args=[cedar.public_id]), OWN).status_code == 302
    own = SpendLimit.objects.get(account=cedar, set_by=SpendLimit.SetBy.OWNER)
    owner = persona("owner")
    # Billed separately, the limit is its people's: the manager sees it and cannot remove it.
    shown = text(owner.get(page(world, cedar)))
    assert "set by Cedar Call Centre itself" in shown and remove_url(world, cedar, own) not in shown
    assert owner.post(remove_url(world, cedar, own)).status_code == 404

    backdate()
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(
            managed=cedar, mode=Account.BillingMode.ROLLUP, actor=Actor(user=world.users["owner"])
        )
    with clock(SWITCH):
        assert apply_billing_mode_changes()["changed"] == 1
    assert client.get(reverse("controls_own_limits", args=[cedar.public_id])).status_code == 404  # no page now
    assert SpendLimit.objects.filter(pk=own.pk).exists()  # the limit outlived the switch

    shown = text(owner.get(page(world, cedar)))
    assert "set by Cedar Call Centre itself, when it paid its own usage" in shown
    assert remove_url(world, cedar, own) in shown
    # Nobody else may remove it: the account's own owner, another tenant, a reporting member.
    assert client.post(remove_url(world, cedar, own)).status_code == 404
    assert persona("other_tenant").post(remove_url(world, cedar, own)).status_code == 404
    assert persona("reporting").post(remove_url(world, cedar, own)).status_code == 403
    assert SpendLimit.objects.filter(pk=own.pk).exists()

    done = owner.post(remove_url(world, cedar, own), follow=True)
    assert "Cedar Call Centre's own limit on all products is removed." in text(done)
    assert not SpendLimit.objects.filter(account=cedar).exists()
    event = AuditEvent.objects.get(change_type="spend_limit.removed")
    assert (event.account, event.user) == (cedar, world.users["owner"])
    assert event.changes == [{"field": "rule", "from": own.rule, "to": None}]
    assert "No spend limit." in text(owner.get(page(world, cedar)))
