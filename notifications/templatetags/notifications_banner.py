"""The low-balance banner of the layout (templates/base.html): shown on an account's pages to those
who see its billing while its balance is below its threshold, with the way to pay."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from accounts.access import AccountAccess
from billing.ledger.selectors import current_balance
from billing.money import format_money
from notifications import selectors

register = template.Library()


@register.inclusion_tag("notifications/_low_balance_banner.html", takes_context=True)
def low_balance_banner(context: template.Context) -> dict[str, Any]:
    access = context.get("access")
    if not isinstance(access, AccountAccess) or not access.can.view_billing:
        return {}
    low = selectors.low_balance(access.account)
    if low is None:
        return {}
    account = access.account
    pay = "top_up" if access.can.manage_billing else "balance"
    return {
        "banner": {
            "account": account,
            "balance": format_money(current_balance(account).amount),
            "threshold": format_money(low.amount),
            "link": reverse(pay, args=[account.public_id]),
            "link_text": "Make a payment" if access.can.manage_billing else "See the balance",
        }
    }
