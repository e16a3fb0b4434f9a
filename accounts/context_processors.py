from django.http import HttpRequest

from accounts.selectors import accounts_for_user


def portal(request: HttpRequest) -> dict[str, object]:
    """The banner while acting, and the account switcher in the header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "acting": getattr(request, "acting", None),
        "my_accounts": accounts_for_user(user),
    }
