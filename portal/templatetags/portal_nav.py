from django import template

from accounts.access import AccountAccess
from portal.navigation import NavGroup, Viewer, navigation_for

register = template.Library()


@register.simple_tag(takes_context=True)
def account_navigation(context: template.Context, access: object = None) -> list[NavGroup]:
    """`{% account_navigation access as groups %}`: the sidebar's sections for this page, from the
    view's `access` (its permission flags) and the resolved URL name (the current-page mark)."""
    viewer = Viewer(access=access if isinstance(access, AccountAccess) else None, acting=bool(context.get("acting")))
    return navigation_for(viewer=viewer, url_name=context.get("nav_url_name"))
