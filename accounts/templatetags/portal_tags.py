from django import template

from accounts import permissions

register = template.Library()


@register.filter
def can_see_pricing(account) -> bool:
    """`{% if account|can_see_pricing %}`: the pricing-visibility rule, for templates."""
    return account is not None and permissions.can_see_pricing(account)
