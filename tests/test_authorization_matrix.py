"""Who gets what on every URL of the portal.

Every URL pattern of the portal (all but the admin site, allauth and static serving) must have a
row in MATRIX, and every row states the expected answer for every persona of tests.conftest. The
policy is the one the design asks for, not whatever the code returns:

- anonymous on a login-required page: 302 to the sign-in page;
- not a member of the account in the URL: 404, never 403 (a 403 would reveal the account exists);
- a member whose role lacks the permission: 403;
- owner and admin manage everything; billing also sees the balance, rates and invoices, reporting
  the usage reports;
- manager_acting is the manager's owner logged in as world.managed's owner: the owner's rights on
  world.managed's pages, a stranger (404) on world.manager's pages;
- a manager reaches its managed accounts only through the manager pages or by logging in as them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from django.contrib.messages import get_messages
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import audit, services
from accounts.actor import Actor
from accounts.models import Account, Membership, OnboardingUpload, Role
from billing.invoices.builder import invoice_party
from billing.ledger import services as ledger
from billing.models import CreditNote, Invoice
from billing.resale_rates import first_allowed_month
from controls import services as controls
from controls.models import SpendLimit
from tests.conftest import PERSONAS, World
from tests.factories import MembershipFactory, UserFactory
from tests.mfa_support import force_login_with_mfa
from webhooks import services as webhooks
from webhooks.models import WebhookDelivery

# --- URL discovery -------------------------------------------------------------------------------

# The admin site and django-allauth (third-party pages), and the v2 API, which API keys guard, not
# sessions: its tenant isolation has its own tests (tests/api/).
EXCLUDED_PREFIXES = ("staff/", "auth/", "v2/")
EXCLUDED_NAMESPACES = {"admin"}
STATIC_VIEWS = {"django.views.static.serve", "django.contrib.staticfiles.views.serve"}


def _callback_path(pattern: URLPattern) -> str:
    callback = pattern.callback
    return f"{callback.__module__}.{getattr(callback, '__name__', type(callback).__name__)}"


def portal_url_patterns() -> list[tuple[str, str | None]]:
    """(full route, full name) of every portal URL pattern; name is None for an unnamed pattern."""
    found = []

    def walk(patterns, prefix: str, namespaces: tuple[str, ...]) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if route.startswith(EXCLUDED_PREFIXES) or pattern.namespace in EXCLUDED_NAMESPACES:
                    continue
                walk(pattern.url_patterns, route, (*namespaces, pattern.namespace) if pattern.namespace else namespaces)
            elif route.startswith(EXCLUDED_PREFIXES) or _callback_path(pattern) in STATIC_VIEWS:
                continue
            else:
                name = ":".join((*namespaces, pattern.name)) if pattern.name else None
                found.append((route, name))

    walk(get_resolver().url_patterns, "", ())
    return found


# --- Expectations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    location: Callable[[World], str] | None = None  # where a 302 must point
    prefix: bool = False  # location is a prefix (the login URL carries ?next=)
    signed_in_as: str | None = None  # world.users key the session belongs to afterwards
    acting: bool | None = None  # whether the session is logging in as a managed account afterwards

    def __repr__(self) -> str:
        return str(self.status)


def _login_url(world: World) -> str:
    return reverse("account_login")


def _home(world: World) -> str:
    return reverse("home")


def _managed_detail(world: World) -> str:
    return reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])


def _managed_dashboard(world: World) -> str:
    return reverse("dashboard", args=[world.managed.public_id])


LOGIN = Expect(302, location=_login_url, prefix=True)


def _as_expect(value: int | Expect) -> Expect:
    return value if isinstance(value, Expect) else Expect(value)


def everyone(status: int, **overrides: int | Expect) -> dict[str, Expect]:
    """The same answer for every persona, signed in or not."""
    return {p: _as_expect(overrides.get(p, status)) for p in PERSONAS}


def members_only(**overrides: int | Expect) -> dict[str, Expect]:
    """A login-required page of one account: anonymous -> sign-in, everyone not named -> 404."""
    unknown = set(overrides) - set(PERSONAS)
    assert not unknown, unknown
    expected = {p: Expect(404) for p in PERSONAS}
    expected["anonymous"] = LOGIN
    expected.update({p: _as_expect(v) for p, v in overrides.items()})
    return expected


def manager_admins(ok: int) -> dict[str, Expect]:
    """A page of world.manager that needs MANAGE_ACCOUNT or MANAGE_MANAGED_ACCOUNTS."""
    return members_only(owner=ok, admin=ok, billing=403, reporting=403)


def managed_owners(ok: int) -> dict[str, Expect]:
    """A page of world.managed: its owner, and the manager's owner acting as that owner."""
    return members_only(managed_owner=ok, manager_acting=ok)


def post_only_get() -> dict[str, Expect]:
    """GET on a POST-only URL: 405 for everyone, signed in or not."""
    return everyone(405)


# --- Targets: the URL kwargs, built from the world ----------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    kwargs: Callable[[World], dict]


def _extra_member(world: World, account) -> Membership:
    """A billing member of `account`: world.manager has one; world.managed gets one."""
    membership = Membership.objects.filter(account=account, role=Role.BILLING).first()
    if membership is None:
        membership = MembershipFactory(user=UserFactory(), account=account, role=Role.BILLING)
    return membership


def _owner_of(world: World, account):
    return Membership.objects.get(account=account, role=Role.OWNER).user


def _invitation(world: World, account):
    return services.invite_member(
        account=account,
        email="invitee@newcomer.example.com",
        role=Role.REPORTING,
        actor=Actor(user=_owner_of(world, account)),
    )


NO_KWARGS = Target("-", lambda w: {})
MANAGER = Target("manager", lambda w: {"account_id": w.manager.public_id})
MANAGED = Target("managed", lambda w: {"account_id": w.managed.public_id})
MANAGER_MEMBER = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "membership_id": _extra_member(w, w.manager).pk}
)
MANAGED_MEMBER = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "membership_id": _extra_member(w, w.managed).pk}
)
# A membership of another tenant, asked for through world.manager's URL: must not be found.
FOREIGN_MEMBER = Target(
    "foreign",
    lambda w: {
        "account_id": w.manager.public_id,
        "membership_id": Membership.objects.get(account=w.other_manager, role=Role.OWNER).pk,
    },
)
MANAGER_INVITATION = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "invitation_id": _invitation(w, w.manager).pk}
)
MANAGED_INVITATION = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "invitation_id": _invitation(w, w.managed).pk}
)
FOREIGN_INVITATION = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "invitation_id": _invitation(w, w.other_manager).pk}
)
OWN_MANAGED = Target("manager", lambda w: {"account_id": w.manager.public_id, "managed_id": w.managed.public_id})
# Another manager's managed account, asked for through world.manager's URL: must not be found.
FOREIGN_MANAGED = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "managed_id": w.other_managed.public_id}
)
TOKEN = Target("manager", lambda w: {"token": _invitation(w, w.manager).token})


def _onboarding_upload(account) -> UUID:
    """A checked CSV upload of `account` (accounts.onboarding) with one valid row, not started."""
    row = {"row": 1, "name": "Matrix Bulk", "owner_email": "bulk@matrix.example.com", "billing_mode": "rollup"}
    rows = [{**row, "pricing_hidden": False, "allow_custom_pricing": False, "problems": []}]
    return OnboardingUpload.objects.create(manager=account, filename="matrix.csv", rows=rows).public_id


MANAGER_UPLOAD = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "upload_id": _onboarding_upload(w.manager)}
)
# Another tenant's upload through world.manager's URL: not found.
FOREIGN_UPLOAD = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "upload_id": _onboarding_upload(w.other_manager)}
)


def _separately_billed_with_credit(world: World):
    """world.sibling billed separately, and USD 100.00 on world.manager's balance to transfer from."""
    Account.objects.filter(pk=world.sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    staff = Actor.platform_staff()
    ledger.adjust_balance(account=world.manager, amount=Decimal("100.00"), reason="Matrix", key="matrix", actor=staff)
    return world.sibling


# world.managed is billed roll-up (no balance to transfer to); this one is billed separately.
SEPARATE_MANAGED = Target(
    "separate",
    lambda w: {"account_id": w.manager.public_id, "managed_id": _separately_billed_with_credit(w).public_id},
)


def _march_invoice(account) -> UUID:
    """`account`'s March 2025 invoice, made as the monthly close makes it (no usage: a zero invoice)."""
    return invoice_party(account=account, month=date(2025, 3, 1)).public_id


MANAGER_INVOICE = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "invoice_id": _march_invoice(w.manager)}
)
# Another tenant's invoice through world.manager's URL, and world.manager's invoice through its
# roll-up managed account's URL (the account whose section is in it): not found.
FOREIGN_INVOICE = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "invoice_id": _march_invoice(w.other_manager)}
)
MANAGERS_INVOICE_VIA_MANAGED = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "invoice_id": _march_invoice(w.manager)}
)


def _resale_invoice(world: World) -> UUID:
    """world.manager's reseller invoice to world.managed (roll-up) for March 2025, which the close of
    March issues along with the manager's own invoice (world.managed existed then)."""
    Account.objects.filter(pk=world.managed.pk).update(created_at=datetime(2025, 1, 1, tzinfo=UTC))
    invoice_party(account=world.manager, month=date(2025, 3, 1))
    return Invoice.objects.get(issuer=world.manager, bill_to=world.managed).public_id


RESALE_INVOICE = Target("manager", lambda w: {"account_id": w.manager.public_id, "invoice_id": _resale_invoice(w)})
RESALE_INVOICE_PAID = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "invoice_id": _resale_invoice(w), "action": "paid"}
)
# The reseller invoice through the URL of the managed account it is billed to: a managed account issues
# no invoices, so not found (it sees the invoice under its own invoices instead).
RESALE_INVOICE_VIA_MANAGED = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "invoice_id": _resale_invoice(w)}
)
RESALE_INVOICE_PAID_VIA_MANAGED = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "invoice_id": _resale_invoice(w), "action": "paid"}
)


def _resale_credit_note(world: World) -> dict:
    """A credit note against world.manager's reseller invoice to world.managed (made directly: the
    invoice has no usage, so nothing is left to credit through the service)."""
    invoice = Invoice.objects.get(public_id=_resale_invoice(world))
    note = CreditNote.objects.create(invoice=invoice, issuer=world.manager, number="CN-0000001", amount=1, reason="M")
    return {"invoice_id": invoice.public_id, "note_id": note.public_id}


RESALE_CREDIT_NOTE = Target("manager", lambda w: {"account_id": w.manager.public_id, **_resale_credit_note(w)})
RESALE_CREDIT_NOTE_VIA_MANAGED = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, **_resale_credit_note(w)}
)
CREDIT_NOTE_ASKED = {
    "mode": "amount",
    "amount": "1.00",
    "reason": "Matrix",
    "key": "5f0e2b1c-7d3a-4e8f-9a6b-1c2d3e4f5a6b",
}


# The public PDF link of the API's `action=link`: the token is the credential, so a bad one is a
# 404 for everyone, signed in or not (tests/test_invoice_pdf.py covers the good, tampered and expired ones).
BAD_DOWNLOAD_TOKEN = Target("bad-token", lambda w: {"token": "not-a-signed-token"})


def _api_key(world: World, account):
    key, _ = services.create_api_key(account=account, name="Matrix key", actor=Actor(user=_owner_of(world, account)))
    return key


MANAGER_KEY = Target("manager", lambda w: {"account_id": w.manager.public_id, "key_id": _api_key(w, w.manager).pk})
MANAGED_KEY = Target("managed", lambda w: {"account_id": w.managed.public_id, "key_id": _api_key(w, w.managed).pk})
# Another tenant's key, and a managed account's key, asked for through world.manager's URL: not found.
FOREIGN_KEY = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "key_id": _api_key(w, w.other_manager).pk}
)
SUBORDINATE_KEY = Target(
    "subordinate", lambda w: {"account_id": w.manager.public_id, "key_id": _api_key(w, w.managed).pk}
)
OWN_MANAGED_KEY = Target(
    "manager",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "key_id": _api_key(w, w.managed).pk,
    },
)
# A sibling's key through world.managed's URL, and another manager's managed account: not found.
SIBLING_KEY = Target(
    "sibling",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "key_id": _api_key(w, w.sibling).pk,
    },
)
FOREIGN_MANAGED_KEY = Target(
    "foreign",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.other_managed.public_id,
        "key_id": _api_key(w, w.other_managed).pk,
    },
)


# --- Payments: a card and a payment of world.manager, and another tenant's (no Stripe call needed) -----


def _card_of(account):
    from billing.models import PaymentMethod

    return PaymentMethod.objects.create(
        account=account, stripe_id=f"pm_matrix_{account.pk}", brand="visa", last4="4242", exp_month=1, exp_year=2035
    ).public_id


def _payment_of(account):
    from billing.models import Payment

    payment = Payment.objects.create(
        account=account,
        kind=Payment.Kind.TOP_UP,
        status=Payment.Status.SUCCEEDED,
        amount=Decimal("10.00"),
        idempotency_key="matrix",
        stripe_payment_intent_id=f"pi_matrix_{account.pk}",
    )
    return payment.public_id


MANAGER_CARD = Target("manager", lambda w: {"account_id": w.manager.public_id, "card_id": _card_of(w.manager)})
FOREIGN_CARD = Target("foreign", lambda w: {"account_id": w.manager.public_id, "card_id": _card_of(w.other_manager)})
MANAGER_PAYMENT = Target("manager", lambda w: {"account_id": w.manager.public_id, "payment_id": _payment_of(w.manager)})
FOREIGN_PAYMENT = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "payment_id": _payment_of(w.other_manager)}
)


def billing_members(ok: int) -> dict[str, Expect]:
    """A page of world.manager that needs VIEW_BILLING or MANAGE_BILLING (owner, admin, billing)."""
    return members_only(owner=ok, admin=ok, billing=ok, reporting=403)


# --- Spend limits: the manager's limit on a managed account, and a separately billed one's own --------


def _set_limit(world: World, account, set_by: str, monthly: str) -> UUID:
    """A limit on every product of `account`, set by its manager's owner or by its own owner."""
    who = account.managed_by if set_by == SpendLimit.SetBy.MANAGER else account
    limit = controls.set_spend_limit(
        account=account,
        set_by=set_by,
        product=None,
        monthly_amount=Decimal(monthly),
        daily_amount=None,
        action=SpendLimit.Action.BLOCK,
        actor=Actor(user=_owner_of(world, who)),
    )
    return limit.public_id


def _manager_limit(world: World, account) -> UUID:
    """The manager's USD 100.00 a month on `account`."""
    return _set_limit(world, account, SpendLimit.SetBy.MANAGER, "100.00")


def _billed_separately(world: World, account):
    """`account` billed separately (a balance of its own), under its manager's USD 100.00 a month."""
    Account.objects.filter(pk=account.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    account.refresh_from_db()
    _manager_limit(world, account)
    return account


def _own_limit(world: World, account) -> UUID:
    """`account` billed separately, with its own USD 50.00 a month under its manager's limit."""
    return _set_limit(world, _billed_separately(world, account), SpendLimit.SetBy.OWNER, "50.00")


def _guaranteed_separate(world: World):
    """SEPARATE_MANAGED's sibling, and a credit limit of USD 500.00 staff gave world.manager, which it
    may pass on to its separately billed accounts."""
    ledger.set_credit_limit(account=world.manager, limit=Decimal("500.00"), actor=Actor.platform_staff())
    return _separately_billed_with_credit(world)


# The manager's limits page of a managed account, asked for through the managed account's own URL.
MANAGED_AS_MANAGER = Target("managed", lambda w: {"account_id": w.managed.public_id, "managed_id": w.managed.public_id})
GUARANTEED_SEPARATE = Target(
    "separate", lambda w: {"account_id": w.manager.public_id, "managed_id": _guaranteed_separate(w).public_id}
)
MANAGED_LIMIT = Target(
    "manager",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "limit_id": _manager_limit(w, w.managed),
    },
)
# Through world.managed's URL: a sibling's limit, another manager's, and world.managed's own limit
# (which its people set, not the manager): not found.
SIBLING_LIMIT = Target(
    "sibling",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "limit_id": _manager_limit(w, w.sibling),
    },
)
FOREIGN_LIMIT = Target(
    "foreign",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "limit_id": _manager_limit(w, w.other_managed),
    },
)
OWN_LIMIT_VIA_MANAGER = Target(
    "own-limit",
    lambda w: {
        "account_id": w.manager.public_id,
        "managed_id": w.managed.public_id,
        "limit_id": _own_limit(w, w.managed),
    },
)
# world.managed billed separately: its own limits page, and its own limit.
SEPARATE_OWN = Target("separate", lambda w: {"account_id": _billed_separately(w, w.managed).public_id})
OWN_LIMIT = Target("separate", lambda w: {"account_id": w.managed.public_id, "limit_id": _own_limit(w, w.managed)})
# Through world.managed's own URL (billed separately): its manager's limit on it, and another
# tenant's own limit: not found.
MANAGERS_LIMIT_VIA_OWN = Target(
    "manager-limit",
    lambda w: {"account_id": w.managed.public_id, "limit_id": _manager_limit(w, _billed_separately(w, w.managed))},
)
FOREIGN_OWN_LIMIT = Target(
    "foreign",
    lambda w: {
        "account_id": _billed_separately(w, w.managed).public_id,
        "limit_id": _own_limit(w, w.other_managed),
    },
)


def _own_limit_then_rollup(world: World) -> UUID:
    """world.managed's own limit, left from a month it was billed separately; it is roll-up again."""
    limit_id = _own_limit(world, world.managed)
    Account.objects.filter(pk=world.managed.pk).update(billing_mode=Account.BillingMode.ROLLUP)
    return limit_id


# Rolled-up world.managed's own-limits URL with a limit that was its own while it was billed separately.
ROLLUP_OWN_LIMIT = Target(
    "rollup",
    lambda w: {"account_id": w.managed.public_id, "limit_id": _own_limit_then_rollup(w)},
)


SPEND_LIMIT = {"product": "", "monthly_amount": "100.00", "action": SpendLimit.Action.BLOCK}
OWN_SPEND_LIMIT = {"product": "", "monthly_amount": "50.00", "action": SpendLimit.Action.ALERT}
ABOVE_MANAGERS_LIMIT = {"product": "", "monthly_amount": "500.00", "action": SpendLimit.Action.BLOCK}


# --- Webhooks: an endpoint of an account, and one delivery to it ----------------------------------------


def _endpoint(world: World, account):
    endpoint, _secret = webhooks.create_endpoint(
        account=account,
        url=f"https://hooks.example.com/{account.public_id}",
        event_types=["service.blocked"],
        actor=Actor(user=_owner_of(world, account)),
    )
    return endpoint


def _delivery(world: World, account) -> dict:
    """An endpoint of `account` and the delivery of a service block to it, as controls records one,
    which failed (a "send again" restarts it)."""
    endpoint = _endpoint(world, account)
    audit.record(
        account=account,
        actor=Actor.platform_staff(),
        change_type=audit.ChangeType.SERVICE_BLOCKED,
        resource=account,
        changes=[{"field": "reason", "from": None, "to": "spend_limit"}],
        related_account=account.manager,
    )
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=1, response_code=500, next_attempt_at=None
    )
    return {"endpoint_id": endpoint.public_id, "delivery_id": delivery.public_id}


MANAGER_ENDPOINT = Target(
    "manager", lambda w: {"account_id": w.manager.public_id, "endpoint_id": _endpoint(w, w.manager).public_id}
)
MANAGED_ENDPOINT = Target(
    "managed", lambda w: {"account_id": w.managed.public_id, "endpoint_id": _endpoint(w, w.managed).public_id}
)
# Another tenant's endpoint, and a managed account's, asked for through world.manager's URL: not found.
FOREIGN_ENDPOINT = Target(
    "foreign", lambda w: {"account_id": w.manager.public_id, "endpoint_id": _endpoint(w, w.other_manager).public_id}
)
SUBORDINATE_ENDPOINT = Target(
    "subordinate", lambda w: {"account_id": w.manager.public_id, "endpoint_id": _endpoint(w, w.managed).public_id}
)
MANAGER_DELIVERY = Target("manager", lambda w: {"account_id": w.manager.public_id, **_delivery(w, w.manager)})
MANAGED_DELIVERY = Target("managed", lambda w: {"account_id": w.managed.public_id, **_delivery(w, w.managed)})
FOREIGN_DELIVERY = Target("foreign", lambda w: {"account_id": w.manager.public_id, **_delivery(w, w.other_manager)})
# Another tenant's delivery under world.manager's own endpoint: not found either.
FOREIGN_DELIVERY_VIA_OWN_ENDPOINT = Target(
    "foreign-delivery",
    lambda w: {
        "account_id": w.manager.public_id,
        "endpoint_id": _endpoint(w, w.manager).public_id,
        "delivery_id": _delivery(w, w.other_manager)["delivery_id"],
    },
)


def _endpoints_page(world: World) -> str:
    return reverse("webhooks_endpoints", args=[world.manager.public_id])


def _delivery_page(world: World) -> str:
    delivery = WebhookDelivery.objects.select_related("endpoint").get(endpoint__account=world.manager)
    return reverse("webhooks_delivery", args=[world.manager.public_id, delivery.endpoint.public_id, delivery.public_id])


NEW_ENDPOINT = {
    "url": "https://hooks.acme.example.com/telnyx",
    "description": "ops",
    "event_types": ["service.blocked"],
}
# A GET-only or POST-only page behind the sign-in: anonymous is sent to sign in before the method is checked.
SIGNED_IN_405 = everyone(405, anonymous=LOGIN)


# --- The matrix ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    target: Target
    expect: dict[str, Expect]
    data: dict = field(default_factory=dict)


def GET(target: Target, expect: dict[str, Expect]) -> Row:  # noqa: N802
    return Row("GET", target, expect)


def POST(target: Target, expect: dict[str, Expect], data: dict | None = None) -> Row:  # noqa: N802
    return Row("POST", target, expect, data or {})


RENAME = {"name": "Renamed Ltd"}
TRANSFER = {"amount": "10.00", "key": "9d1c2f6e-3a52-4d0b-9b8e-2f8f0c6d7a11"}
INVITE = {"email": "new.member@acme.example.com", "role": Role.REPORTING}
NEW_KEY = {"name": "Matrix sync"}
MARKUP = {"markup_percent": "12.5"}
RESALE_RATE = {
    "action": "set",
    "product": "voice.outbound",
    "unit_price": "0.0125",
    "effective_from": first_allowed_month().isoformat(),
}
PAID_NOTE = {"note": "Bank transfer 4711"}
NEW_MANAGED = {"name": "Gamma Calls", "email": "gamma@customers.example.com", "billing_mode": "rollup"}

INVITEE_PASSWORD = {"password1": "a long matrix passphrase 7", "password2": "a long matrix passphrase 7"}


def _manager_dashboard(world: World) -> str:
    return reverse("dashboard", args=[world.manager.public_id])


# Log in as world.managed, from world.manager's managed-account page.
LOG_IN_AS_POST = members_only(
    owner=Expect(302, location=_managed_dashboard, signed_in_as="managed_owner", acting=True),
    # admins_can_log_in_as is False: back to the detail page with a message, session unchanged.
    admin=Expect(302, location=_managed_detail, signed_in_as="admin", acting=False),
    billing=Expect(403, signed_in_as="billing", acting=False),
    reporting=Expect(403, signed_in_as="reporting", acting=False),
    # Acting as a managed owner, who is no member of world.manager: never chained.
    manager_acting=Expect(404, signed_in_as="managed_owner", acting=True),
)


def _sibling_detail(world: World) -> str:
    return reverse("managed_detail", args=[world.manager.public_id, world.sibling.public_id])


# Not acting: a 302 home and nothing changes. Acting: back to the manager's page for the account.
ACTING_RETURN_POST = {
    p: Expect(302, location=_home, signed_in_as=None if p == "anonymous" else p, acting=False) for p in PERSONAS
}
ACTING_RETURN_POST["manager_acting"] = Expect(302, location=_managed_detail, signed_in_as="owner", acting=False)

MATRIX: dict[str, list[Row]] = {
    "healthz": [GET(NO_KWARGS, everyone(200))],
    "home": [GET(NO_KWARGS, everyone(302, anonymous=LOGIN))],
    # The sidebar's account search: only the person's own memberships, for anyone signed in.
    "account_switcher": [GET(NO_KWARGS, everyone(200, anonymous=LOGIN))],
    "dashboard": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=200)),
        GET(MANAGED, managed_owners(200)),
    ],
    "account_settings": [
        GET(MANAGER, manager_admins(200)),
        POST(MANAGER, manager_admins(302), RENAME),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(302), RENAME),
    ],
    "members": [GET(MANAGER, manager_admins(200)), GET(MANAGED, managed_owners(200))],
    "member_invite": [
        GET(MANAGER, post_only_get()),
        POST(MANAGER, manager_admins(302), INVITE),
        POST(MANAGED, managed_owners(302), INVITE),
    ],
    "member_role": [
        GET(MANAGER_MEMBER, manager_admins(200)),
        POST(MANAGER_MEMBER, manager_admins(302), {"role": Role.REPORTING}),
        GET(MANAGED_MEMBER, managed_owners(200)),
        POST(MANAGED_MEMBER, managed_owners(302), {"role": Role.REPORTING}),
        GET(FOREIGN_MEMBER, members_only(billing=403, reporting=403)),
    ],
    "member_remove": [
        GET(MANAGER_MEMBER, manager_admins(200)),
        POST(MANAGER_MEMBER, manager_admins(302)),
        GET(MANAGED_MEMBER, managed_owners(200)),
        POST(MANAGED_MEMBER, managed_owners(302)),
        POST(FOREIGN_MEMBER, members_only(billing=403, reporting=403)),
    ],
    "invitation_revoke": [
        GET(MANAGER_INVITATION, post_only_get()),
        POST(MANAGER_INVITATION, manager_admins(302)),
        POST(MANAGED_INVITATION, managed_owners(302)),
        POST(FOREIGN_INVITATION, members_only(billing=403, reporting=403)),
    ],
    **{
        name: [
            GET(MANAGER, members_only(owner=200, admin=200, billing=403, reporting=200)),
            GET(MANAGED, managed_owners(200)),
        ]
        for name in ("usage_report", "usage_report_csv", "usage_records", "usage_records_csv")
    },
    "usage_upload": [
        GET(MANAGER, manager_admins(200)),
        POST(MANAGER, manager_admins(422)),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(422)),
    ],
    "rate_card": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(MANAGED, managed_owners(200)),
    ],
    # A roll-up managed account (world.managed) gets a page saying it has no balance of its own.
    "balance": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(MANAGED, managed_owners(200)),
    ],
    # A roll-up managed account (world.managed) gets a page saying its usage is on its manager's invoice.
    "invoice_list": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(MANAGED, managed_owners(200)),
    ],
    "invoice_detail": [
        GET(MANAGER_INVOICE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(FOREIGN_INVOICE, members_only(reporting=403)),
        GET(MANAGERS_INVOICE_VIA_MANAGED, members_only()),
    ],
    "invoice_pdf": [
        GET(MANAGER_INVOICE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(FOREIGN_INVOICE, members_only(reporting=403)),
        GET(MANAGERS_INVOICE_VIA_MANAGED, members_only()),
        POST(MANAGER_INVOICE, everyone(405, anonymous=LOGIN)),  # GET only; the sign-in comes first
    ],
    # A manager's reseller invoices: billing people of the manager; a managed account issues none (404).
    "resale_invoices": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=403)),
        POST(MANAGER, members_only(owner=302, admin=302, billing=302, reporting=403), MARKUP),
        GET(MANAGED, members_only()),
    ],
    # A manager's resale prices (its cost beside them): its reselling people; a managed account has none (404).
    "resale_rates": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=403)),
        POST(MANAGER, members_only(owner=302, admin=302, billing=302, reporting=403), RESALE_RATE),
        GET(MANAGED, members_only()),
        POST(MANAGED, members_only(), RESALE_RATE),
    ],
    "issued_invoice_detail": [
        GET(RESALE_INVOICE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(RESALE_INVOICE_VIA_MANAGED, members_only()),
    ],
    "issued_invoice_pdf": [
        GET(RESALE_INVOICE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(RESALE_INVOICE_VIA_MANAGED, members_only()),
    ],
    "issued_invoice_status": [
        GET(RESALE_INVOICE_PAID, members_only(owner=200, admin=200, billing=200, reporting=403)),
        POST(RESALE_INVOICE_PAID, members_only(owner=302, admin=302, billing=302, reporting=403), PAID_NOTE),
        POST(RESALE_INVOICE_PAID_VIA_MANAGED, members_only(), PAID_NOTE),
    ],
    # Credit notes: the manager's billing people credit its reseller invoices (a zero invoice: refused,
    # 422); the bill-to downloads a credit note through its own URL.
    "issued_credit_note_new": [
        GET(RESALE_INVOICE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        POST(RESALE_INVOICE, members_only(owner=422, admin=422, billing=422, reporting=403), CREDIT_NOTE_ASKED),
        GET(RESALE_INVOICE_VIA_MANAGED, members_only()),
        POST(RESALE_INVOICE_VIA_MANAGED, members_only(), CREDIT_NOTE_ASKED),
    ],
    "issued_credit_note_pdf": [
        GET(RESALE_CREDIT_NOTE, members_only(owner=200, admin=200, billing=200, reporting=403)),
        GET(RESALE_CREDIT_NOTE_VIA_MANAGED, members_only()),
    ],
    "credit_note_pdf": [
        GET(RESALE_CREDIT_NOTE_VIA_MANAGED, managed_owners(200)),
        GET(RESALE_CREDIT_NOTE, members_only(reporting=403)),  # the manager is not billed by it
    ],
    "invoice_download": [GET(BAD_DOWNLOAD_TOKEN, everyone(404)), POST(BAD_DOWNLOAD_TOKEN, everyone(405))],
    # Who the account is on its invoices: its billing people edit it (a manager acting, as the manager).
    "billing_profile": [
        GET(MANAGER, billing_members(200)),
        POST(MANAGER, billing_members(302), {"legal_name": "Acme GmbH", "invoice_emails": "ap@acme.example.com"}),
        POST(MANAGER, billing_members(422), {"invoice_emails": "not-an-address"}),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(302), {"legal_name": "Alpine Voice AG", "country": "CH"}),
    ],
    # Payments. A roll-up managed account (world.managed) gets pages saying it is billed to its manager,
    # and its POSTs are refused (422). No row below reaches Stripe: the POSTs stop at their forms.
    "payment_methods": [GET(MANAGER, billing_members(200)), GET(MANAGED, managed_owners(200))],
    "payment_method_add": [
        GET(MANAGER, billing_members(200)),
        POST(MANAGER, billing_members(422)),  # no confirmed SetupIntent
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(422)),
    ],
    "payment_method_setup": [
        GET(MANAGER, post_only_get()),
        POST(MANAGER, billing_members(422)),  # no key
        POST(MANAGED, managed_owners(422)),
    ],
    "payment_method_default": [
        GET(MANAGER_CARD, post_only_get()),
        POST(MANAGER_CARD, billing_members(302)),
        POST(FOREIGN_CARD, members_only(reporting=403)),
    ],
    # GET, and a POST without `confirm`, are the confirmation step.
    "payment_method_remove": [
        GET(MANAGER_CARD, billing_members(200)),
        POST(MANAGER_CARD, billing_members(200)),
        GET(FOREIGN_CARD, members_only(reporting=403)),
        POST(FOREIGN_CARD, members_only(reporting=403), {"confirm": "1"}),
    ],
    "payment_history": [GET(MANAGER, billing_members(200)), GET(MANAGED, managed_owners(200))],
    "top_up": [
        GET(MANAGER, billing_members(200)),
        POST(MANAGER, billing_members(422), {"amount": "0"}),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(422), {"amount": "10.00"}),
    ],
    "payment_detail": [
        GET(MANAGER_PAYMENT, billing_members(200)),
        GET(FOREIGN_PAYMENT, members_only(reporting=403)),
    ],
    "auto_recharge": [
        GET(MANAGER, billing_members(200)),
        POST(MANAGER, billing_members(302), {"threshold": "10.00", "amount": "50.00"}),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(422), {"threshold": "10.00", "amount": "50.00"}),
    ],
    # Public: Stripe's webhook; without a good signature it is a 400 for anyone.
    "stripe_webhook": [GET(NO_KWARGS, post_only_get()), POST(NO_KWARGS, everyone(400))],
    "audit_log": [GET(MANAGER, manager_admins(200)), GET(MANAGED, managed_owners(200))],
    "api_keys": [GET(MANAGER, manager_admins(200)), GET(MANAGED, managed_owners(200))],
    # The new key's secret is rendered once, straight from the POST (200), never redirected to.
    "api_key_create": [
        GET(MANAGER, post_only_get()),
        GET(MANAGED, post_only_get()),
        POST(MANAGER, manager_admins(200), NEW_KEY),
        POST(MANAGED, managed_owners(200), NEW_KEY),
    ],
    "api_key_revoke": [
        GET(MANAGER_KEY, manager_admins(200)),
        POST(MANAGER_KEY, manager_admins(302)),
        GET(MANAGED_KEY, managed_owners(200)),
        POST(MANAGED_KEY, managed_owners(302)),
        GET(FOREIGN_KEY, members_only(billing=403, reporting=403)),
        POST(FOREIGN_KEY, members_only(billing=403, reporting=403)),
        POST(SUBORDINATE_KEY, members_only(billing=403, reporting=403)),
    ],
    # Managed accounts own no managed accounts: those pages do not exist on world.managed.
    "managed_list": [GET(MANAGER, manager_admins(200)), GET(MANAGED, members_only())],
    "managed_create": [
        GET(MANAGER, manager_admins(200)),
        POST(MANAGER, manager_admins(302), NEW_MANAGED),
        GET(MANAGED, members_only()),
        POST(MANAGED, members_only(), NEW_MANAGED),
    ],
    # Bulk onboarding: a POST without a file is refused with the reason (422).
    "managed_onboarding": [
        GET(MANAGER, manager_admins(200)),
        POST(MANAGER, manager_admins(422)),
        GET(MANAGED, members_only()),
    ],
    **{
        name: [GET(MANAGER_UPLOAD, manager_admins(200)), GET(FOREIGN_UPLOAD, members_only(billing=403, reporting=403))]
        for name in ("managed_onboarding_report", "managed_onboarding_progress", "managed_onboarding_status")
    },
    "managed_onboarding_start": [
        GET(MANAGER_UPLOAD, post_only_get()),
        POST(MANAGER_UPLOAD, manager_admins(302)),
        POST(FOREIGN_UPLOAD, members_only(billing=403, reporting=403)),
    ],
    "managed_detail": [
        GET(OWN_MANAGED, manager_admins(200)),
        GET(FOREIGN_MANAGED, members_only(billing=403, reporting=403)),
    ],
    # The managed account's hub tabs (accounts.managed_hub): each asks its own flag in the manager.
    **{
        name: [GET(OWN_MANAGED, manager_admins(200)), GET(FOREIGN_MANAGED, members_only(billing=403, reporting=403))]
        for name in ("managed_api_keys", "managed_members", "managed_audit")
    },
    "managed_usage": [
        GET(OWN_MANAGED, members_only(owner=200, admin=200, billing=403, reporting=200)),
        GET(FOREIGN_MANAGED, members_only(billing=403)),
    ],
    **{
        name: [
            GET(OWN_MANAGED, members_only(owner=200, admin=200, billing=200, reporting=403)),
            GET(FOREIGN_MANAGED, members_only(reporting=403)),
        ]
        for name in ("managed_invoices", "managed_balance")
    },
    "managed_settings": [
        GET(OWN_MANAGED, manager_admins(200)),
        POST(OWN_MANAGED, manager_admins(302), {"name": "Alpine Voice Renamed"}),
    ],
    **{
        f"managed_{action}": [GET(OWN_MANAGED, manager_admins(200)), POST(OWN_MANAGED, manager_admins(302))]
        for action in ("disable", "enable", "cancel")
    },
    "managed_api_key_create": [
        GET(OWN_MANAGED, post_only_get()),
        POST(OWN_MANAGED, manager_admins(200), NEW_KEY),
        POST(FOREIGN_MANAGED, members_only(billing=403, reporting=403), NEW_KEY),
    ],
    "managed_api_key_revoke": [
        GET(OWN_MANAGED_KEY, manager_admins(200)),
        POST(OWN_MANAGED_KEY, manager_admins(302)),
        GET(SIBLING_KEY, members_only(billing=403, reporting=403)),
        POST(SIBLING_KEY, members_only(billing=403, reporting=403)),
        GET(FOREIGN_MANAGED_KEY, members_only(billing=403, reporting=403)),
        POST(FOREIGN_MANAGED_KEY, members_only(billing=403, reporting=403)),
    ],
    # GET the form, POST the confirmation step (200), POST with confirm the transfer (302). A roll-up
    # target (world.managed) is explained on GET and refused on POST (422).
    "managed_transfer": [
        GET(OWN_MANAGED, manager_admins(200)),
        POST(OWN_MANAGED, manager_admins(422), TRANSFER),
        GET(SEPARATE_MANAGED, manager_admins(200)),
        POST(SEPARATE_MANAGED, manager_admins(200), TRANSFER),
        POST(
            SEPARATE_MANAGED,
            members_only(
                owner=Expect(302, location=_sibling_detail),
                admin=Expect(302, location=_sibling_detail),
                billing=403,
                reporting=403,
            ),
            {**TRANSFER, "confirm": "1"},
        ),
        GET(FOREIGN_MANAGED, members_only(billing=403, reporting=403)),
        POST(FOREIGN_MANAGED, members_only(billing=403, reporting=403), TRANSFER),
    ],
    # Spend limits. The manager's pages need MANAGE_MANAGED_ACCOUNTS (none on a managed account: 404);
    # a roll-up account (world.managed) takes limits but no credit limit (422).
    "controls_limits": [
        GET(MANAGER, manager_admins(200)),
        GET(MANAGED, members_only()),
        POST(MANAGER, SIGNED_IN_405),
    ],
    "controls_managed_limit": [
        GET(OWN_MANAGED, manager_admins(200)),
        POST(OWN_MANAGED, manager_admins(302), SPEND_LIMIT),
        POST(OWN_MANAGED, manager_admins(422), {**SPEND_LIMIT, "monthly_amount": "0"}),
        GET(SEPARATE_MANAGED, manager_admins(200)),
        GET(FOREIGN_MANAGED, members_only(billing=403, reporting=403)),
        POST(FOREIGN_MANAGED, members_only(billing=403, reporting=403), SPEND_LIMIT),
        GET(MANAGED_AS_MANAGER, members_only()),
        POST(MANAGED_AS_MANAGER, members_only(), SPEND_LIMIT),
    ],
    "controls_managed_credit": [
        GET(GUARANTEED_SEPARATE, SIGNED_IN_405),
        POST(GUARANTEED_SEPARATE, manager_admins(302), {"credit_limit": "200.00"}),
        POST(GUARANTEED_SEPARATE, manager_admins(422), {"credit_limit": "600.00"}),  # above its own 500.00
        POST(OWN_MANAGED, manager_admins(422), {"credit_limit": "0.00"}),  # roll-up: no credit limit
        POST(FOREIGN_MANAGED, members_only(billing=403, reporting=403), {"credit_limit": "0.00"}),
        POST(MANAGED_AS_MANAGER, members_only(), {"credit_limit": "0.00"}),
    ],
    "controls_managed_limit_remove": [
        GET(MANAGED_LIMIT, SIGNED_IN_405),
        POST(MANAGED_LIMIT, manager_admins(302)),
        POST(SIBLING_LIMIT, members_only(billing=403, reporting=403)),
        POST(FOREIGN_LIMIT, members_only(billing=403, reporting=403)),
        POST(OWN_LIMIT_VIA_MANAGER, members_only(billing=403, reporting=403)),
    ],
    # A separately billed managed account's own limits (MANAGE_ACCOUNT), never above its manager's;
    # any other account has no such page (404), after the role check (403).
    "controls_own_limits": [
        GET(SEPARATE_OWN, managed_owners(200)),
        POST(SEPARATE_OWN, managed_owners(302), OWN_SPEND_LIMIT),
        POST(SEPARATE_OWN, managed_owners(422), ABOVE_MANAGERS_LIMIT),
        GET(MANAGED, members_only()),
        POST(MANAGED, members_only(), OWN_SPEND_LIMIT),
        GET(MANAGER, members_only(billing=403, reporting=403)),
        POST(MANAGER, members_only(billing=403, reporting=403), OWN_SPEND_LIMIT),
    ],
    "controls_own_limit_remove": [
        GET(OWN_LIMIT, SIGNED_IN_405),
        POST(OWN_LIMIT, managed_owners(302)),
        POST(MANAGERS_LIMIT_VIA_OWN, members_only()),
        POST(FOREIGN_OWN_LIMIT, members_only()),
        POST(ROLLUP_OWN_LIMIT, members_only()),
    ],
    # Settings -> Notifications: every member chooses their own alerts (a manager acting as an account
    # may read but not change its owner's: 403); the low-balance threshold is for those who move the
    # account's money (MANAGE_BILLING), on an account that pays its own usage (a roll-up one: 404).
    "notification_settings": [
        GET(MANAGER, members_only(owner=200, admin=200, billing=200, reporting=200)),
        POST(MANAGER, members_only(owner=302, admin=302, billing=302, reporting=302), {"email_balance_low": "on"}),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, members_only(managed_owner=302, manager_acting=403), {"email_balance_low": "on"}),
    ],
    "notification_low_balance": [
        GET(MANAGER, SIGNED_IN_405),
        POST(MANAGER, members_only(owner=302, admin=302, billing=302, reporting=403), {"threshold_amount": "5.00"}),
        POST(MANAGER, members_only(owner=422, admin=422, billing=422, reporting=403), {"threshold_amount": "x"}),
        POST(MANAGED, members_only(), {"threshold_amount": "5.00"}),
        POST(SEPARATE_OWN, managed_owners(302), {"threshold_amount": "5.00", "enabled": "on"}),
    ],
    # Webhooks under Developers: owners and admins (MANAGE_ACCOUNT). Creating renders the secret once (200).
    "webhooks_endpoints": [
        GET(MANAGER, manager_admins(200)),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGER, SIGNED_IN_405),
    ],
    "webhooks_create": [
        GET(MANAGER, manager_admins(200)),
        POST(MANAGER, manager_admins(200), NEW_ENDPOINT),
        POST(MANAGER, manager_admins(422), {**NEW_ENDPOINT, "url": "ftp://hooks.acme.example.com/"}),
        GET(MANAGED, managed_owners(200)),
        POST(MANAGED, managed_owners(200), NEW_ENDPOINT),
    ],
    "webhooks_edit": [
        GET(MANAGER_ENDPOINT, manager_admins(200)),
        POST(MANAGER_ENDPOINT, manager_admins(302), NEW_ENDPOINT),
        POST(MANAGER_ENDPOINT, manager_admins(422), {**NEW_ENDPOINT, "event_types": []}),
        GET(MANAGED_ENDPOINT, managed_owners(200)),
        POST(MANAGED_ENDPOINT, managed_owners(302), NEW_ENDPOINT),
        GET(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403), NEW_ENDPOINT),
        GET(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403), NEW_ENDPOINT),
    ],
    "webhooks_toggle": [
        GET(MANAGER_ENDPOINT, SIGNED_IN_405),
        POST(MANAGER_ENDPOINT, manager_admins(302)),
        POST(MANAGED_ENDPOINT, managed_owners(302)),
        POST(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403)),
    ],
    # GET asks for confirmation (how many deliveries go with it); POST deletes and goes back to the list.
    "webhooks_delete": [
        GET(MANAGER_ENDPOINT, manager_admins(200)),
        POST(
            MANAGER_ENDPOINT,
            members_only(
                owner=Expect(302, location=_endpoints_page),
                admin=Expect(302, location=_endpoints_page),
                billing=403,
                reporting=403,
            ),
        ),
        GET(MANAGED_ENDPOINT, managed_owners(200)),
        POST(MANAGED_ENDPOINT, managed_owners(302)),
        GET(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403)),
        GET(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403)),
    ],
    "webhooks_deliveries": [
        GET(MANAGER_ENDPOINT, manager_admins(200)),
        GET(MANAGED_ENDPOINT, managed_owners(200)),
        GET(FOREIGN_ENDPOINT, members_only(billing=403, reporting=403)),
        GET(SUBORDINATE_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(MANAGER_ENDPOINT, SIGNED_IN_405),
    ],
    "webhooks_delivery": [
        GET(MANAGER_DELIVERY, manager_admins(200)),
        GET(MANAGED_DELIVERY, managed_owners(200)),
        GET(FOREIGN_DELIVERY, members_only(billing=403, reporting=403)),
        GET(FOREIGN_DELIVERY_VIA_OWN_ENDPOINT, members_only(billing=403, reporting=403)),
        POST(MANAGER_DELIVERY, SIGNED_IN_405),
    ],
    # GET asks for confirmation; POST queues it again and goes back to the delivery.
    "webhooks_resend": [
        GET(MANAGER_DELIVERY, manager_admins(200)),
        POST(
            MANAGER_DELIVERY,
            members_only(
                owner=Expect(302, location=_delivery_page),
                admin=Expect(302, location=_delivery_page),
                billing=403,
                reporting=403,
            ),
        ),
        GET(MANAGED_DELIVERY, managed_owners(200)),
        POST(MANAGED_DELIVERY, managed_owners(302)),
        GET(FOREIGN_DELIVERY, members_only(billing=403, reporting=403)),
        POST(FOREIGN_DELIVERY, members_only(billing=403, reporting=403)),
        POST(FOREIGN_DELIVERY_VIA_OWN_ENDPOINT, members_only(billing=403, reporting=403)),
    ],
    # Development only (tests run as MC_ENV=test): a 404 for everyone, whoever is signed in; POST-only
    # before that. In development a signature, never a session, lets a delivery in (test below).
    "webhooks_dev_receiver": [
        GET(NO_KWARGS, post_only_get()),
        POST(NO_KWARGS, everyone(404)),
    ],
    "managed_log_in_as": [
        # The method is checked before the sign-in: a GET is a 405 even for anonymous.
        GET(OWN_MANAGED, post_only_get()),
        POST(OWN_MANAGED, LOG_IN_AS_POST),
        POST(FOREIGN_MANAGED, members_only(billing=403, reporting=403)),
    ],
    "acting_return": [GET(NO_KWARGS, post_only_get()), POST(NO_KWARGS, ACTING_RETURN_POST)],
    # Public: the invitation shows to anyone with the token; accepting needs the invited address (a
    # signed-in stranger is shown why not, 200). Not signed in, the invitee (no user yet) chooses a
    # password there and joins at once: without one the form is refused (422).
    "accept_invitation": [
        GET(TOKEN, everyone(200)),
        POST(TOKEN, everyone(200, anonymous=422)),
        POST(TOKEN, everyone(200, anonymous=Expect(302, location=_manager_dashboard)), INVITEE_PASSWORD),
    ],
}


def _cases():
    for name, rows in MATRIX.items():
        for row in rows:
            for persona_name in PERSONAS:
                yield pytest.param(
                    name,
                    row,
                    persona_name,
                    id=f"{name}@{row.target.label}-{row.method}-{persona_name}",
                )


CASES = list(_cases())


# --- Tests -------------------------------------------------------------------------------------------------


def test_every_portal_url_is_in_the_matrix():
    patterns = portal_url_patterns()
    unnamed = [route for route, name in patterns if name is None]
    missing = sorted({name for _, name in patterns if name} - set(MATRIX))
    assert not unnamed, f"URL patterns without a name cannot be checked: {unnamed}"
    assert not missing, f"URLs with no row in the authorization MATRIX: {missing}"


def test_matrix_names_only_existing_urls():
    names = {name for _, name in portal_url_patterns()}
    stale = sorted(set(MATRIX) - names)
    assert not stale, f"MATRIX rows for URLs that no longer exist: {stale}"


def test_matrix_rows_cover_every_persona():
    for name, rows in MATRIX.items():
        assert rows, name
        for row in rows:
            assert set(row.expect) == set(PERSONAS), (name, row.target.label, row.method)
            assert row.method in {"GET", "POST"}, (name, row.method)


def _session_user_id(client) -> str | None:
    return client.session.get("_auth_user_id")


@pytest.mark.parametrize(("url_name", "row", "persona_name"), CASES)
def test_authorization(world, persona, url_name, row, persona_name):
    client = persona(persona_name)
    url = reverse(url_name, kwargs=row.target.kwargs(world))
    expect = row.expect[persona_name]

    response = client.get(url) if row.method == "GET" else client.post(url, row.data)

    where = f"{row.method} {url} as {persona_name}"
    assert response.status_code == expect.status, f"{where}: {response.status_code}, expected {expect.status}"
    if expect.location is not None:
        wanted = expect.location(world)
        location = response["Location"]
        if expect.prefix:
            assert location.startswith(wanted), f"{where}: redirected to {location}, expected {wanted}..."
        else:
            assert location == wanted, f"{where}: redirected to {location}, expected {wanted}"
    if expect.signed_in_as is not None:
        assert _session_user_id(client) == str(world.users[expect.signed_in_as].pk), f"{where}: session user"
    elif expect.acting is not None:  # anonymous stays anonymous
        assert _session_user_id(client) is None, f"{where}: session user"
    if expect.acting is not None:
        assert bool(client.session.get("hijack_history")) == expect.acting, f"{where}: hijack_history"


@pytest.mark.parametrize("persona_name", PERSONAS)
def test_the_development_receiver_lets_in_a_signature_not_a_session(world, persona, settings, persona_name):
    """In development the receiver answers, but a signed-in person is no sender: unsigned, a 401 for all."""
    settings.MC_ENV, settings.DEBUG, settings.PRODUCTION = "development", True, False
    response = persona(persona_name).post(reverse("webhooks_dev_receiver"), {"event_type": "service.blocked"})
    assert response.status_code == 401


def test_admin_not_granted_log_in_as_is_told_why(world, persona):
    client = persona("admin")
    url = reverse("managed_log_in_as", args=[world.manager.public_id, world.managed.public_id])
    response = client.post(url)
    assert response.status_code == 302
    errors = [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert errors, "the admin is sent back without a reason"
    assert not client.session.get("hijack_history")


def test_platform_staff_see_no_customer_pages_but_the_admin_site(world, client):
    staff = UserFactory(email="ops@platform.example.com", is_staff=True, is_superuser=True)
    force_login_with_mfa(client, staff)  # the admin opens only to a session that passed MFA
    pages = [
        reverse(name, args=[account.public_id])
        for account in (world.manager, world.managed, world.standard)
        for name in ("dashboard", "account_settings", "members", "audit_log", "api_keys", "balance", "invoice_list")
    ]
    pages += [
        reverse("managed_list", args=[world.manager.public_id]),
        reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id]),
        reverse("managed_settings", args=[world.manager.public_id, world.managed.public_id]),
        reverse("managed_transfer", args=[world.manager.public_id, world.managed.public_id]),
    ]
    for page in pages:
        assert client.get(page).status_code == 404, page
    response = client.post(reverse("managed_log_in_as", args=[world.manager.public_id, world.managed.public_id]))
    assert response.status_code == 404
    assert not client.session.get("hijack_history")

    assert client.get(reverse("admin:index")).status_code == 200
