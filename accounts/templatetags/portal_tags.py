from django import template

from accounts import permissions
from accounts.models import Account

register = template.Library()


@register.filter
def can_see_pricing(account: Account | None) -> bool:
    """`{% if account|can_see_pricing %}`: the pricing-visibility rule, for templates."""
    return account is not None and permissions.can_see_pricing(account)
