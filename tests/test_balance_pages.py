"""The billing pages: an account's balance and ledger, a manager's credit transfer to a managed
account, the balance column of the managed-accounts list, and staff adjustments in the admin site."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Role
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import Balance, LedgerEntry, Product, Rate
from billing.usage.services import ingest_usage
from tests.conftest import make_managed_accounts
from tests.factories import AccountFactory, MembershipFactory, UserFactory
from tests.mfa_support import force_login_with_mfa
from tests.payments_support import add_card, confirmed_but_unsettled

STAFF = Actor.platform_staff()


def credit(account: Account, amount: str, reason: str = "Opening credit", key: str | None = None) -> None:
    ledger.adjust_balance(
        account=account, amount=Decimal(amount), reason=reason, key=key or uuid.uuid4().hex, actor=STAFF
    )


def set_credit_limit(account: Account, limit: str) -> None:
    Balance.objects.update_or_create(account=account, defaults={"credit_limit": Decimal(limit)})


def make_separate(account: Account) -> Account:
    Account.objects.filter(pk=account.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    account.refresh_from_db()
    return account


def balance_url(account: Account) -> str:
    return reverse("balance", args=[account.public_id])


def transfer_url(manager: Account, managed: Account) -> str:
    return reverse("managed_transfer", args=[manager.public_id, managed.public_id])


def detail_url(manager: Account, managed: Account) -> str:
    return reverse("managed_detail", args=[manager.public_id, managed.public_id])


def amount_of(account: Account) -> Decimal:
    return Balance.objects.get(account=account).amount


def text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def ledger_state() -> dict:
    """Every row a transfer or an adjustment could touch, to prove that nothing changed."""
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in (Balance, LedgerEntry, AuditEvent)}


# --- Balance page ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "billing"])
def test_it_shows_balance_credit_limit_available_credit_and_entries(world, persona, role):
    set_credit_limit(world.manager, "50.00")
    credit(world.manager, "1234.56", reason="Wire received")

    response = persona(role).get(balance_url(world.manager))

    assert response.status_code == 200
    page = text(response)
    facts = re.sub(r"\s+", " ", page)
    assert "<dt>Balance</dt><dd><strong>USD 1,234.56</strong></dd>" in facts
    assert "<dt>Credit limit</dt><dd>USD 50.00</dd>" in facts
    assert "<dt>Available credit</dt><dd>USD 1,284.56" in facts
    assert "<dt>Currency</dt><dd>USD</dd>" in facts
    assert "Adjustment: Wire received" in page
    assert re.search(rf'<a href="{balance_url(world.manager)}"[^>]*>\s*Balance\s*</a>', page)  # the nav link


def test_the_reporting_role_may_not_see_the_balance(world, persona):
    credit(world.manager, "1234.56")
    response = persona("reporting").get(balance_url(world.manager))

    assert response.status_code == 403
    assert "1,234.56" not in text(response)


def test_the_balance_link_is_in_the_nav_for_billing_but_not_for_reporting(world, persona):
    dashboard = reverse("dashboard", args=[world.manager.public_id])
    assert f'href="{balance_url(world.manager)}"' in text(persona("billing").get(dashboard))
    assert f'href="{balance_url(world.manager)}"' not in text(persona("reporting").get(dashboard))


def test_an_account_without_a_balance_yet_shows_zero_and_creates_nothing(world, persona):
    response = persona("standard_owner").get(balance_url(world.standard))

    assert response.status_code == 200
    assert "<strong>USD 0.00</strong>" in text(response)
    assert "No entries yet" in text(response)
    assert not Balance.objects.exists()


@pytest.mark.usefixtures("localstripe")
def test_it_shows_the_card_payments_still_pending_beside_the_balance(world, persona, localstripe):
    credit(world.manager, "5.00")
    card = add_card(localstripe, world.manager, world.users["owner"])
    confirmed_but_unsettled(world.manager, world.users["owner"], card, "25.00")

    facts = re.sub(r"\s+", " ", text(persona("billing").get(balance_url(world.manager))))

    assert "<dt>Balance</dt><dd><strong>USD 5.00</strong></dd>" in facts  # not credited until settled
    assert "<dt>Pending</dt><dd>USD 25.00" in facts


def test_nothing_pending_shows_zero(world, persona):
    facts = re.sub(r"\s+", " ", text(persona("standard_owner").get(balance_url(world.standard))))

    assert "<dt>Pending</dt><dd>USD 0.00" in facts


def test_the_entries_are_newest_first_25_a_page(world, persona):
    for n in range(30):
        credit(world.manager, f"{n + 1}.00", reason=f"Entry {n + 1:02d}")
    client = persona("billing")

    first = client.get(balance_url(world.manager))
    second = client.get(balance_url(world.manager), {"page": 2})

    first_rows = [row.record.description for row in first.context["table"].page]
    second_rows = [row.record.description for row in second.context["table"].page]
    assert first_rows == [f"Adjustment: Entry {n:02d}" for n in range(30, 5, -1)]
    assert second_rows == [f"Adjustment: Entry {n:02d}" for n in range(5, 0, -1)]
    assert "USD 30.00" in text(first)


def test_the_entries_show_date_kind_description_and_amount(world, persona):
    credit(world.manager, "-7.50", reason="Correction")

    page = text(persona("owner").get(balance_url(world.manager)))

    for heading in ("Date (UTC)", "Kind", "Description", "Amount"):
        assert heading in page
    assert "Adjustment: Correction" in page
    assert "USD -7.50" in page
    assert datetime.now(UTC).strftime("%Y-%m-%d") in page


def test_an_account_sees_only_its_own_entries(world, persona):
    credit(world.other_manager, "777.77", reason="Other tenant's money")
    credit(world.manager, "5.00")

    page = text(persona("owner").get(balance_url(world.manager)))

    assert "777.77" not in page
    assert "Other tenant" not in page


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_a_roll_up_account_is_told_it_is_billed_to_its_manager(world, persona, who):
    credit(world.manager, "4321.09")

    response = persona(who).get(balance_url(world.managed))

    assert response.status_code == 200
    page = text(response)
    assert "Alpine Voice has no balance of its own." in page
    assert "billed to Acme Reseller" in page
    assert "4,321.09" not in page
    assert "USD" not in page
    assert "table" not in response.context
    assert not Balance.objects.filter(account=world.managed).exists()


def test_a_separately_billed_managed_account_sees_its_own_balance(world, persona):
    make_separate(world.managed)
    credit(world.managed, "12.00")

    page = text(persona("managed_owner").get(balance_url(world.managed)))

    assert "<strong>USD 12.00</strong>" in page


@pytest.fixture
def hidden_pricing_usage(world, django_capture_on_commit_callbacks):
    """world.managed billed separately with pricing hidden; 923.1 voice minutes at the manager's
    USD 0.013370 a minute, charged to its balance by the usage task (USD 12.34)."""
    Account.objects.filter(pk=world.managed.pk).update(billing_mode=Account.BillingMode.SEPARATE, pricing_hidden=True)
    world.managed.refresh_from_db()
    start = datetime.now(UTC) - timedelta(days=40)
    voice = Product.objects.get(sku="voice.outbound")
    Rate.objects.create(product=voice, account=world.manager, unit_price=Decimal("0.013370"), effective_from=start)
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    row = {"product": "voice.outbound", "quantity": "923.1", "started_at": moment.isoformat(), "idempotency_key": "c1"}
    with django_capture_on_commit_callbacks(execute=True):
        ingest_usage(submitter=world.managed, rows=[row], source="api", actor=Actor(user=world.users["managed_owner"]))
    assert amount_of(world.managed) == Decimal("-12.34")


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_a_hidden_pricing_account_sees_its_balance_and_charges_but_no_rate(world, persona, hidden_pricing_usage, who):
    page = text(persona(who).get(balance_url(world.managed)))

    assert "<strong>USD -12.34</strong>" in page
    assert "Usage of Alpine Voice" in page
    assert "USD -12.34" in page
    for rate in ("0.013370", "0.01337", "013370", "voice.outbound"):
        assert rate not in page


# --- Managed accounts: balance column and detail ----------------------------------------------------------


def balance_cells(response) -> dict[str, str]:
    table = response.context["table"]
    return {row.record.name: row.get_cell("balance") for row in table.page}


def test_the_list_shows_each_managed_accounts_balance(world, persona):
    make_separate(world.sibling)
    credit(world.sibling, "1234.50")
    other = make_separate(
        AccountFactory(name="Cedar Lines", kind=Account.Kind.MANAGED, manager=world.manager, billing_mode="separate")
    )

    cells = balance_cells(persona("owner").get(reverse("managed_list", args=[world.manager.public_id])))

    assert cells == {
        "Alpine Voice": "billed to you (roll-up)",
        "Blue Harbor": "USD 1,234.50",
        other.name: "USD 0.00",  # no balance row yet
    }


def test_the_list_sorts_by_balance_with_roll_up_accounts_last(world, persona):
    make_separate(world.sibling)
    credit(world.sibling, "5.00")
    poor = AccountFactory(name="Cedar Lines", kind=Account.Kind.MANAGED, manager=world.manager, billing_mode="separate")
    credit(poor, "-3.00")
    url = reverse("managed_list", args=[world.manager.public_id])
    client = persona("owner")

    ascending = list(balance_cells(client.get(url, {"sort": "balance"})))
    descending = list(balance_cells(client.get(url, {"sort": "-balance"})))

    assert ascending == ["Cedar Lines", "Blue Harbor", "Alpine Voice"]
    assert descending == ["Blue Harbor", "Cedar Lines", "Alpine Voice"]


def test_the_list_with_balances_runs_the_same_number_of_queries_for_5_and_for_3000_accounts(db):
    owner = UserFactory()
    client = Client()
    client.force_login(owner)
    counts = {}
    # Both managers first: the account switcher reads the person's memberships only when it has
    # more than one, so the two pages must be measured with the same memberships.
    managers = {size: AccountFactory(manager_kind=True, name=f"Reseller of {size}") for size in (5, 3000)}
    for manager in managers.values():
        MembershipFactory(user=owner, account=manager, role=Role.OWNER)
    for size, manager in managers.items():
        accounts = make_managed_accounts(manager, size)
        separate = [a for a in accounts if a.billing_mode == Account.BillingMode.SEPARATE]
        Balance.objects.bulk_create(Balance(account=a, amount=Decimal("9.99")) for a in separate[::2])
        url = reverse("managed_list", args=[manager.public_id])
        client.get(url)  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, {"sort": "balance"})
        assert response.status_code == 200
        if size == 5:
            assert set(balance_cells(response).values()) == {"USD 9.99", "USD 0.00", "billed to you (roll-up)"}
        counts[size] = len(queries)
    print(f"managed_list with balances, queries: {counts}")
    assert counts[5] == counts[3000]


def test_the_detail_page_of_a_separate_account_shows_its_balance_and_a_transfer_link(world, persona):
    make_separate(world.sibling)
    credit(world.sibling, "42.00")

    page = text(persona("owner").get(detail_url(world.manager, world.sibling)))

    assert "USD 42.00" in page
    assert f'href="{transfer_url(world.manager, world.sibling)}"' in page
    assert "Transfer credit" in page


def test_the_detail_page_of_a_roll_up_account_says_it_is_billed_to_the_manager(world, persona):
    page = text(persona("owner").get(detail_url(world.manager, world.managed)))

    assert "Billed to you (roll-up)" in page
    assert "Transfer credit" not in page


def test_a_cancelled_account_offers_no_transfer(world, persona):
    make_separate(world.sibling)
    Account.objects.filter(pk=world.sibling.pk).update(status=Account.Status.CANCELLED)

    page = text(persona("owner").get(detail_url(world.manager, world.sibling)))

    assert "Transfer credit" not in page


# --- Transfer --------------------------------------------------------------------------------------------


@pytest.fixture
def funded(world):
    """world.sibling billed separately; USD 100.00 on world.manager's balance, no credit limit."""
    make_separate(world.sibling)
    credit(world.manager, "100.00")
    return world


def form_key(response) -> str:
    return str(response.context["form"].initial["key"])


def test_a_manager_transfers_credit_after_a_confirmation_step(funded, persona):
    world = funded
    client = persona("owner")
    url = transfer_url(world.manager, world.sibling)

    form = client.get(url)
    assert form.status_code == 200
    assert "USD 100.00" in text(form)  # the manager's available credit
    key = form_key(form)
    assert f'name="key" value="{key}"' in text(form)

    confirm = client.post(url, {"amount": "40", "key": key})
    assert confirm.status_code == 200
    page = re.sub(r"\s+", " ", text(confirm))
    assert "Transfer USD 40.00 to Blue Harbor?" in page
    assert "<dt>Amount</dt><dd><strong>USD 40.00</strong></dd>" in page
    assert "<dt>From</dt><dd>Acme Reseller</dd>" in page
    assert "<dt>To</dt><dd>Blue Harbor</dd>" in page
    assert "<dt>Your available credit after</dt><dd>USD 60.00</dd>" in page
    assert f'name="key" value="{key}"' in page
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TRANSFER_OUT).exists()  # nothing yet

    done = client.post(url, {"amount": "40.00", "key": key, "confirm": "1"})

    assert done.status_code == 302
    assert done["Location"] == detail_url(world.manager, world.sibling)
    assert messages_of(done) == ["USD 40.00 transferred to Blue Harbor."]
    assert amount_of(world.manager) == Decimal("60.00")
    assert amount_of(world.sibling) == Decimal("40.00")
    assert ledger_selectors.ledger_sum(world.manager) == Decimal("60.00")
    assert ledger_selectors.ledger_sum(world.sibling) == Decimal("40.00")
    event = AuditEvent.objects.get(change_type="balance.transferred")
    assert (event.account, event.related_account, event.user) == (world.manager, world.sibling, world.users["owner"])
    assert "Credit transferred to Blue Harbor" in text(persona("billing").get(balance_url(world.manager)))
    assert "USD 40.00" in text(client.get(detail_url(world.manager, world.sibling)))


def test_an_admin_may_transfer_too(funded, persona):
    client = persona("admin")
    url = transfer_url(funded.manager, funded.sibling)
    key = form_key(client.get(url))

    response = client.post(url, {"amount": "1.00", "key": key, "confirm": "1"})

    assert response.status_code == 302
    assert amount_of(funded.sibling) == Decimal("1.00")


def test_the_credit_limit_counts_towards_what_can_be_transferred(funded, persona):
    set_credit_limit(funded.manager, "25.00")
    client = persona("owner")
    url = transfer_url(funded.manager, funded.sibling)
    key = form_key(client.get(url))

    confirm = client.post(url, {"amount": "125.00", "key": key})
    assert "<dd>USD 0.00</dd>" in text(confirm)
    response = client.post(url, {"amount": "125.00", "key": key, "confirm": "1"})

    assert response.status_code == 302
    assert amount_of(funded.manager) == Decimal("-25.00")


BAD_AMOUNTS = [
    ("0", "Transfer more than zero."),
    ("0.00", "Transfer more than zero."),
    ("-5.00", "Transfer more than zero."),
    ("1.005", "Use at most 2 decimal places (whole cents)."),
    ("100000.01", "A transfer is at most USD 100,000.00."),
    ("1e9", "A transfer is at most USD 100,000.00."),
    ("100.01", "Not enough credit: USD 100.01 is more than your available USD 100.00."),
    ("", "Enter an amount."),
    ("ten", "Enter an amount such as 25.00."),
    ("NaN", "Enter an amount such as 25.00."),
]


@pytest.mark.parametrize("confirm", [False, True], ids=["step-1", "confirming"])
@pytest.mark.parametrize(("amount", "message"), BAD_AMOUNTS, ids=[a or "empty" for a, _ in BAD_AMOUNTS])
def test_a_bad_amount_is_refused_on_the_form_and_changes_nothing(funded, persona, amount, message, confirm):
    if confirm and message.startswith("Not enough credit"):
        message = "Not enough credit: USD 100.01 is more than the available USD 100.00."  # the ledger's words
    client = persona("owner")
    url = transfer_url(funded.manager, funded.sibling)
    before = ledger_state()

    data = {"amount": amount, "key": form_key(client.get(url))} | ({"confirm": "1"} if confirm else {})
    response = client.post(url, data)

    assert response.status_code == 422
    assert response.context["form"].errors["amount"] == [message]
    assert message.replace("'", "&#x27;") in text(response)
    assert ledger_state() == before


def test_a_form_shown_again_after_a_refused_confirmation_asks_for_confirmation_again(funded, persona):
    client = persona("owner")
    url = transfer_url(funded.manager, funded.sibling)
    key = form_key(client.get(url))

    refused = client.post(url, {"amount": "100.01", "key": key, "confirm": "1"})
    assert refused.status_code == 422
    assert 'name="confirm"' not in text(refused)
    assert f'name="key" value="{key}"' in text(refused)  # nothing was made under it

    again = client.post(url, {"amount": "50.00", "key": key})  # what the re-shown form sends

    assert again.status_code == 200
    assert "Transfer USD 50.00 to Blue Harbor?" in text(again)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TRANSFER_OUT).exists()


def test_a_transfer_to_a_roll_up_account_is_refused(world, persona):
    credit(world.manager, "100.00")
    client = persona("owner")
    url = transfer_url(world.manager, world.managed)
    before = ledger_state()

    form = client.get(url)
    assert form.status_code == 200
    assert "Alpine Voice is billed to you (roll-up); it has no balance to transfer to." in text(form)
    assert 'name="amount"' not in text(form)

    for confirm in ({}, {"confirm": "1"}):
        response = client.post(url, {"amount": "10.00", "key": str(uuid.uuid4()), **confirm})
        assert response.status_code == 422
        assert "Alpine Voice is billed to you (roll-up); it has no balance to transfer to." in text(response)
    assert ledger_state() == before
    assert not Balance.objects.filter(account=world.managed).exists()


def test_a_transfer_to_a_cancelled_account_is_refused(funded, persona):
    Account.objects.filter(pk=funded.sibling.pk).update(status=Account.Status.CANCELLED)
    before = ledger_state()

    response = persona("owner").post(
        transfer_url(funded.manager, funded.sibling), {"amount": "10.00", "key": str(uuid.uuid4()), "confirm": "1"}
    )

    assert response.status_code == 422
    assert "Blue Harbor is cancelled; credit cannot be transferred to it." in text(response)
    assert ledger_state() == before


def test_a_bad_key_is_refused_and_changes_nothing(funded, persona):
    before = ledger_state()

    response = persona("owner").post(
        transfer_url(funded.manager, funded.sibling), {"amount": "10.00", "key": "not-a-key", "confirm": "1"}
    )

    assert response.status_code == 422
    assert ledger_state() == before


def test_a_double_submit_transfers_once(funded, persona):
    client = persona("owner")
    url = transfer_url(funded.manager, funded.sibling)
    data = {"amount": "70.00", "key": form_key(client.get(url)), "confirm": "1"}

    first = client.post(url, data)
    second = client.post(url, data)  # the manager now has 30.00: still answered with the first transfer

    assert (first.status_code, second.status_code) == (302, 302)
    assert (
        messages_of(second)[-1] == "This transfer was already made (USD 70.00 to Blue Harbor); nothing was sent twice."
    )
    assert amount_of(funded.manager) == Decimal("30.00")
    assert amount_of(funded.sibling) == Decimal("70.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TRANSFER_IN).count() == 1
    assert AuditEvent.objects.filter(change_type="balance.transferred").count() == 1


def test_each_form_shown_is_a_new_transfer(funded, persona):
    client = persona("owner")
    url = transfer_url(funded.manager, funded.sibling)

    for _ in range(2):
        client.post(url, {"amount": "10.00", "key": form_key(client.get(url)), "confirm": "1"})

    assert amount_of(funded.sibling) == Decimal("20.00")


def test_another_managers_account_cannot_receive_a_transfer(funded, persona):
    make_separate(funded.other_managed)
    before = ledger_state()

    response = persona("owner").post(
        transfer_url(funded.manager, funded.other_managed),
        {"amount": "10.00", "key": str(uuid.uuid4()), "confirm": "1"},
    )

    assert response.status_code == 404
    assert ledger_state() == before


# --- Admin site: Balance and LedgerEntry --------------------------------------------------------------------


@pytest.fixture
def staff(db):
    user = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()
    force_login_with_mfa(client, user)  # the admin opens only to a session that passed MFA
    return client, user


def adjust_url(balance: Balance) -> str:
    return reverse("admin:billing_balance_adjust", args=[balance.pk])


def test_staff_adjust_a_balance_and_it_is_audited(world, staff):
    client, user = staff
    credit(world.standard, "10.00")
    balance = Balance.objects.get(account=world.standard)

    form = client.get(adjust_url(balance))
    assert form.status_code == 200
    key = str(form.context["form"].initial["key"])
    response = client.post(adjust_url(balance), {"amount": "-2.50", "reason": " Duplicate top-up ", "key": key})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_balance_change", args=[balance.pk])
    assert amount_of(world.standard) == Decimal("7.50")
    entry = LedgerEntry.objects.get(account=world.standard, amount=Decimal("-2.50"))
    assert (entry.kind, entry.description, entry.created_by) == ("adjustment", "Adjustment: Duplicate top-up", user)
    event = AuditEvent.objects.get(account=world.standard, change_type="balance.adjusted", user=user)
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM
    assert {"field": "reason", "from": None, "to": "Duplicate top-up"} in event.changes

    client.post(adjust_url(balance), {"amount": "-2.50", "reason": "Duplicate top-up", "key": key})  # double submit
    assert amount_of(world.standard) == Decimal("7.50")
    assert AuditEvent.objects.filter(account=world.standard, change_type="balance.adjusted", user=user).count() == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "0", "reason": "x"}, "amount", "An adjustment is not zero."),
        ({"amount": "1.001", "reason": "x"}, "amount", "Use at most 2 decimal places (whole cents)."),
        ({"amount": "5.00", "reason": "   "}, "reason", "Give the reason for the adjustment."),
    ],
    ids=["zero", "three-decimals", "no-reason"],
)
def test_a_bad_adjustment_is_refused_and_changes_nothing(world, staff, data, field, message):
    client, _ = staff
    credit(world.standard, "10.00")
    balance = Balance.objects.get(account=world.standard)
    before = ledger_state()

    response = client.post(adjust_url(balance), {**data, "key": str(uuid.uuid4())})

    assert response.status_code == 422
    assert response.context["form"].errors[field] == [message]
    assert ledger_state() == before


def test_staff_change_the_credit_limit_without_touching_the_amount(world, staff):
    client, _ = staff
    credit(world.standard, "10.00")
    balance = Balance.objects.get(account=world.standard)
    url = reverse("admin:billing_balance_change", args=[balance.pk])
    assert client.get(url).status_code == 200
    credit(world.standard, "5.00")  # posted after the form was loaded: must not be written back over

    response = client.post(url, {"credit_limit": "250.00", "amount": "999.00"})

    assert response.status_code == 302
    balance.refresh_from_db()
    assert (balance.amount, balance.credit_limit) == (Decimal("15.00"), Decimal("250.00"))
    assert balance.amount == ledger_selectors.ledger_sum(world.standard)
    log = LogEntry.objects.get(object_id=str(balance.pk))
    assert log.get_change_message() == "Changed credit limit from 0.00 to 250.00."


def test_a_negative_credit_limit_is_refused(world, staff):
    client, _ = staff
    credit(world.standard, "10.00")
    balance = Balance.objects.get(account=world.standard)

    response = client.post(reverse("admin:billing_balance_change", args=[balance.pk]), {"credit_limit": "-1"})

    assert response.status_code == 200
    assert "A credit limit is zero or more." in text(response)
    balance.refresh_from_db()
    assert balance.credit_limit == 0


def test_staff_give_an_account_without_a_balance_a_credit_limit(world, staff):
    client, _ = staff

    response = client.post(
        reverse("admin:billing_balance_add"), {"account": world.standard.pk, "credit_limit": "30.00"}
    )

    assert response.status_code == 302
    balance = Balance.objects.get(account=world.standard)
    assert (balance.amount, balance.credit_limit) == (0, Decimal("30.00"))


def test_a_roll_up_account_cannot_be_given_a_balance(world, staff):
    client, _ = staff

    response = client.post(reverse("admin:billing_balance_add"), {"account": world.managed.pk, "credit_limit": "1"})

    assert response.status_code == 200
    assert "is billed to its manager (roll-up) and has no balance of its own." in text(response)
    assert not Balance.objects.filter(account=world.managed).exists()


def test_the_balance_list_links_to_the_adjustment(world, staff):
    client, _ = staff
    credit(world.standard, "10.00")

    page = text(client.get(reverse("admin:billing_balance_changelist")))

    assert adjust_url(Balance.objects.get(account=world.standard)) in page
    assert "USD 10.00" in page


def test_ledger_entries_are_read_only_in_the_admin(world, staff):
    client, _ = staff
    credit(world.standard, "10.00")
    entry = LedgerEntry.objects.get()
    change = reverse("admin:billing_ledgerentry_change", args=[entry.pk])

    assert client.get(reverse("admin:billing_ledgerentry_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    page = client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in text(page)
    assert client.post(change, {"amount": "99.00"}).status_code == 403
    assert client.post(reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.amount == Decimal("10.00")


def test_customers_cannot_reach_the_adjustment(world, persona):
    credit(world.manager, "10.00")
    balance = Balance.objects.get(account=world.manager)

    response = persona("owner").post(adjust_url(balance), {"amount": "100.00", "reason": "x", "key": str(uuid.uuid4())})

    assert response.status_code == 302  # to the admin's sign-in page
    assert amount_of(world.manager) == Decimal("10.00")
