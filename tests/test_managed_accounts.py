"""Managed accounts as a manager's owner meets them: create, list, settings, disable / enable / cancel."""

import pytest
from allauth.account.models import EmailAddress
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Invitation, Membership, Role, User
from tests.conftest import make_managed_accounts
from tests.factories import AccountFactory, MembershipFactory, UserFactory, account_with_owner

STRONG_PASSWORD = "a-Strong-passphrase-42"


def db_state() -> dict:
    """Every row that a managed-account action could touch, to prove that nothing changed."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Account, User, Membership, Invitation, EmailAddress, AuditEvent)
    }


def create_url(manager: Account) -> str:
    return reverse("managed_create", args=[manager.public_id])


def list_url(manager: Account) -> str:
    return reverse("managed_list", args=[manager.public_id])


def action_url(action: str, manager: Account, managed: Account) -> str:
    return reverse(f"managed_{action}", args=[manager.public_id, managed.public_id])


def listed_names(response) -> list[str]:
    return [row.record.name for row in response.context["table"].page.object_list]


def set_status(account: Account, status: str) -> None:
    Account.objects.filter(pk=account.pk).update(status=status)
    account.refresh_from_db()


def valid_create_data(**overrides) -> dict:
    data = {
        "name": "Cobalt Clinics",
        "email": "Owner@Cobalt.example.com",
        "password": STRONG_PASSWORD,
        "billing_mode": Account.BillingMode.SEPARATE,
        "allow_custom_pricing": "on",
        "pricing_hidden": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- Creating ----------------------------------------------------------------------------------------


def test_it_creates_a_managed_account_with_its_owner(world, persona):
    owner = world.users["owner"]
    response = persona("owner").post(create_url(world.manager), valid_create_data())

    managed = Account.objects.get(name="Cobalt Clinics")
    assert response.status_code == 302
    assert response["Location"] == reverse("managed_detail", args=[world.manager.public_id, managed.public_id])
    assert managed.kind == Account.Kind.MANAGED
    assert managed.manager == world.manager
    assert managed.status == Account.Status.ENABLED
    assert managed.email == "owner@cobalt.example.com"
    assert managed.billing_mode == Account.BillingMode.SEPARATE
    assert managed.allow_custom_pricing is True
    assert managed.pricing_hidden is True
    new_owner = User.objects.get(email="owner@cobalt.example.com")
    assert new_owner.check_password(STRONG_PASSWORD)
    membership = Membership.objects.get(account=managed)
    assert (membership.user, membership.role) == (new_owner, Role.OWNER)

    event = AuditEvent.objects.get(change_type="managed_account.created")
    assert event.account == world.manager
    assert event.related_account == managed
    assert event.user == owner
    assert event.user_email == owner.email
    assert event.acting_as is None
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    assert event.resource_id == str(managed.public_id)
    assert {"field": "billing_mode", "from": None, "to": "separate"} in event.changes


def test_the_new_account_detail_page_shows_what_was_chosen(world, persona):
    client = persona("owner")
    response = client.post(create_url(world.manager), valid_create_data(), follow=True)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Managed account Cobalt Clinics created." in content
    assert "Separate" in content
    assert "Hidden from this account" in content


def test_it_stores_roll_up_billing_and_visible_pricing_when_the_boxes_are_left_empty(world, persona):
    data = valid_create_data(billing_mode="rollup", allow_custom_pricing=None, pricing_hidden=None)
    response = persona("owner").post(create_url(world.manager), data)

    assert response.status_code == 302
    managed = Account.objects.get(name="Cobalt Clinics")
    assert managed.billing_mode == Account.BillingMode.ROLLUP
    assert managed.allow_custom_pricing is False
    assert managed.pricing_hidden is False


def test_an_owner_created_without_a_password_cannot_sign_in_yet(world, persona):
    client = persona("owner")
    response = client.post(create_url(world.manager), valid_create_data(password=""), follow=True)

    assert response.status_code == 200
    new_owner = User.objects.get(email="owner@cobalt.example.com")
    assert not new_owner.has_usable_password()
    assert "no password yet" in response.content.decode()


def test_an_admin_creates_a_managed_account_as_an_organization_member(world, persona):
    response = persona("admin").post(create_url(world.manager), valid_create_data())

    assert response.status_code == 302
    event = AuditEvent.objects.get(change_type="managed_account.created")
    assert event.user == world.users["admin"]
    assert event.change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER


def test_the_billing_role_cannot_create_managed_accounts(world, persona):
    client = persona("billing")
    before = db_state()

    response = client.post(create_url(world.manager), valid_create_data())

    assert response.status_code == 403
    assert db_state() == before


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "   "}, "name", "This field is required."),
        ({"name": "x" * 256}, "name", "Ensure this value has at most 255 characters (it has 256)."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"email": ""}, "email", "This field is required."),
        ({"password": "123"}, "password", "This password is too short."),
        ({"password": "password123"}, "password", "This password is too common."),
        ({"billing_mode": "monthly"}, "billing_mode", "Select a valid choice."),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "name-256-chars",
        "invalid-email",
        "empty-email",
        "weak-password",
        "common-password",
        "unknown-billing-mode",
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(world, persona, overrides, field, message):
    client = persona("owner")
    before = db_state()

    response = client.post(create_url(world.manager), valid_create_data(**overrides))

    assert response.status_code == 422
    assert any(message in error for error in response.context["form"].errors[field])
    assert message in response.content.decode()
    assert db_state() == before


@pytest.mark.parametrize("case", ["same-case", "different-case"])
def test_a_registered_owner_email_is_invited_as_owner_and_not_revealed(world, persona, case):
    """Issue 11, hole 9: no "already exists" (see services.create_managed_account). The account is
    created as for a new address; the user who has the address is invited to own it."""
    existing = world.users["sibling_owner"]
    email = existing.email if case == "same-case" else existing.email.upper()
    client = persona("owner")
    users = User.objects.count()

    response = client.post(create_url(world.manager), valid_create_data(email=email), follow=True)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Managed account Cobalt Clinics created." in content and "already exists" not in content
    managed = Account.objects.get(name="Cobalt Clinics")
    assert managed.email == existing.email and not managed.memberships.exists()
    invitation = Invitation.objects.get(account=managed)
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        existing.email,
        Role.OWNER,
        world.users["owner"],
    )
    assert User.objects.count() == users
    existing.refresh_from_db()
    assert not existing.check_password(STRONG_PASSWORD)  # nobody sets another person's password


def test_the_owner_email_of_a_user_in_another_tenant_is_invited_too(world, persona):
    client = persona("owner")
    other = world.users["other_tenant"]

    response = client.post(create_url(world.manager), valid_create_data(email=other.email))

    assert response.status_code == 302
    managed = Account.objects.get(name="Cobalt Clinics")
    assert Invitation.objects.filter(account=managed, email=other.email, role=Role.OWNER).exists()
    assert not Membership.objects.filter(account=managed).exists()
    assert set(other.memberships.values_list("account", flat=True)) == {world.other_manager.pk}


def test_it_refuses_a_new_account_once_the_limit_is_reached(world, persona):
    in_use = services.active_managed_count(world.manager)
    assert in_use == 2
    world.manager.managed_account_limit = in_use
    world.manager.save()
    client = persona("owner")
    before = db_state()

    response = client.post(create_url(world.manager), valid_create_data())

    assert response.status_code == 422
    content = response.content.decode()
    assert "You have reached your limit of 2 managed accounts." in content
    assert response.context["form"].non_field_errors()
    assert db_state() == before


def test_cancelled_accounts_do_not_count_against_the_limit(world, persona):
    set_status(world.sibling, Account.Status.CANCELLED)
    AccountFactory(managed_kind=True, manager=world.manager, cancelled=True)
    world.manager.managed_account_limit = 2
    world.manager.save()

    response = persona("owner").post(create_url(world.manager), valid_create_data())

    assert response.status_code == 302
    assert Account.objects.filter(name="Cobalt Clinics", manager=world.manager).exists()
    assert services.active_managed_count(world.manager) == 2


def test_disabled_accounts_count_against_the_limit(world, persona):
    set_status(world.sibling, Account.Status.DISABLED)
    world.manager.managed_account_limit = 2
    world.manager.save()

    response = persona("owner").post(create_url(world.manager), valid_create_data())

    assert response.status_code == 422
    assert not Account.objects.filter(name="Cobalt Clinics").exists()


# --- Disable, enable, cancel -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "start", "warning"),
    [
        ("disable", Account.Status.ENABLED, "Its users can no longer sign in"),
        ("enable", Account.Status.DISABLED, "Its users can sign in again"),
        ("cancel", Account.Status.ENABLED, "Cancelling is final."),
    ],
)
def test_a_status_change_asks_for_confirmation_first(world, persona, action, start, warning):
    set_status(world.managed, start)
    client = persona("owner")
    before = db_state()

    response = client.get(action_url(action, world.manager, world.managed))

    assert response.status_code == 200
    content = response.content.decode()
    assert warning in content
    assert '<form method="post">' in content
    assert f"{action.capitalize()} Alpine Voice</button>" in content
    assert db_state() == before


@pytest.mark.parametrize(
    ("action", "start", "target"),
    [
        ("disable", Account.Status.ENABLED, Account.Status.DISABLED),
        ("enable", Account.Status.DISABLED, Account.Status.ENABLED),
        ("cancel", Account.Status.ENABLED, Account.Status.CANCELLED),
        ("cancel", Account.Status.DISABLED, Account.Status.CANCELLED),
    ],
)
def test_a_confirmed_status_change_is_made_and_audited(world, persona, action, start, target):
    set_status(world.managed, start)

    response = persona("owner").post(action_url(action, world.manager, world.managed))

    assert response.status_code == 302
    assert response["Location"] == reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    world.managed.refresh_from_db()
    assert world.managed.status == target
    event = AuditEvent.objects.get()
    past = {"disable": "disabled", "enable": "enabled", "cancel": "cancelled"}[action]
    assert event.change_type == f"managed_account.{past}"
    assert event.account == world.manager
    assert event.related_account == world.managed
    assert event.user == world.users["owner"]
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    assert event.changes == [{"field": "status", "from": start, "to": target}]


def test_disabling_an_already_disabled_account_changes_nothing(world, persona):
    set_status(world.managed, Account.Status.DISABLED)
    client = persona("owner")
    before = db_state()

    response = client.post(action_url("disable", world.manager, world.managed), follow=True)

    assert response.status_code == 200
    assert "Alpine Voice is already disabled; nothing changed." in response.content.decode()
    assert db_state() == before


def test_a_cancelled_account_cannot_be_enabled(world, persona):
    set_status(world.managed, Account.Status.CANCELLED)
    client = persona("owner")
    before = db_state()

    confirm = client.get(action_url("enable", world.manager, world.managed))
    response = client.post(action_url("enable", world.manager, world.managed), follow=True)

    assert confirm.status_code == 200
    assert "cannot be enabled now" in confirm.content.decode()
    assert '<form method="post">' not in confirm.content.decode()
    assert "is cancelled, so it cannot be enabled." in response.content.decode()
    assert db_state() == before


def test_a_cancelled_account_cannot_be_disabled_or_cancelled_again(world, persona):
    set_status(world.managed, Account.Status.CANCELLED)
    client = persona("owner")
    before = db_state()

    for action in ("disable", "cancel"):
        client.post(action_url(action, world.manager, world.managed))

    assert db_state() == before


def test_the_cancel_confirmation_of_a_cancelled_account_reads_correctly(world, persona):
    set_status(world.managed, Account.Status.CANCELLED)

    response = persona("owner").get(action_url("cancel", world.manager, world.managed))

    assert response.status_code == 200
    assert "Alpine Voice is cancelled, so it cannot be cancelled now." in response.content.decode()


def test_a_cancelled_account_is_hidden_from_the_default_list(world, persona):
    client = persona("owner")
    client.post(action_url("cancel", world.manager, world.sibling), follow=True)  # shows the success message

    default = client.get(list_url(world.manager))
    cancelled = client.get(list_url(world.manager), {"status": "cancelled"})

    assert listed_names(default) == ["Alpine Voice"]
    assert "Blue Harbor" not in default.content.decode()
    assert listed_names(cancelled) == ["Blue Harbor"]
    assert "Blue Harbor" in cancelled.content.decode()


def test_a_cancelled_account_has_no_settings_link_nor_status_actions(world, persona):
    set_status(world.managed, Account.Status.CANCELLED)

    response = persona("owner").get(reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id]))

    content = response.content.decode()
    assert response.status_code == 200
    assert reverse("managed_settings", args=[world.manager.public_id, world.managed.public_id]) not in content
    for action in ("disable", "enable", "cancel"):
        assert action_url(action, world.manager, world.managed) not in content


# --- Another manager's managed accounts ------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["own-manager", "other-manager"])
@pytest.mark.parametrize("action", ["disable", "cancel", "enable", "settings"])
def test_a_forged_post_against_another_managers_account_is_a_404(world, persona, prefix, action):
    manager = world.manager if prefix == "own-manager" else world.other_manager
    if action == "enable":
        set_status(world.other_managed, Account.Status.DISABLED)
    client = persona("owner")
    before = db_state()

    response = client.post(
        action_url(action, manager, world.other_managed), {"name": "Hijacked", "pricing_hidden": "on"}
    )

    assert response.status_code == 404
    assert db_state() == before


@pytest.mark.parametrize("prefix", ["own-manager", "other-manager"])
def test_another_managers_account_detail_is_a_404(world, persona, prefix):
    manager = world.manager if prefix == "own-manager" else world.other_manager

    response = persona("owner").get(reverse("managed_detail", args=[manager.public_id, world.other_managed.public_id]))

    assert response.status_code == 404


def test_the_other_tenant_cannot_create_under_this_manager(world, persona):
    client = persona("other_tenant")
    before = db_state()

    response = client.post(create_url(world.manager), valid_create_data())

    assert response.status_code == 404
    assert db_state() == before


# --- Settings --------------------------------------------------------------------------------------


def settings_url(world) -> str:
    return reverse("managed_settings", args=[world.manager.public_id, world.managed.public_id])


def test_it_saves_settings_and_audits_each_changed_field(world, persona):
    response = persona("owner").post(settings_url(world), {"name": "  Alpine Voice Ltd ", "pricing_hidden": "on"})

    assert response.status_code == 302
    assert response["Location"] == reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    world.managed.refresh_from_db()
    assert world.managed.name == "Alpine Voice Ltd"
    assert world.managed.pricing_hidden is True
    event = AuditEvent.objects.get()
    assert event.change_type == "managed_account.updated"
    assert event.account == world.manager
    assert event.related_account == world.managed
    assert event.user == world.users["owner"]
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    assert event.changes == [
        {"field": "name", "from": "Alpine Voice", "to": "Alpine Voice Ltd"},
        {"field": "pricing_hidden", "from": False, "to": True},
    ]


def test_the_settings_form_shows_the_current_values(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)

    response = persona("owner").get(settings_url(world))

    assert response.status_code == 200
    assert response.context["form"].initial == {
        "name": "Alpine Voice",
        "pricing_hidden": True,
        "allow_custom_pricing": False,
    }


def test_saving_unchanged_settings_writes_no_audit_event(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(settings_url(world), {"name": "Alpine Voice"})

    assert response.status_code == 302
    assert db_state() == before


def test_an_empty_name_is_refused_in_settings(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(settings_url(world), {"name": "", "pricing_hidden": "on"})

    assert response.status_code == 422
    assert response.context["form"].errors["name"] == ["This field is required."]
    assert "This field is required." in response.content.decode()
    assert db_state() == before


def test_a_cancelled_accounts_settings_cannot_be_changed(world, persona):
    set_status(world.managed, Account.Status.CANCELLED)
    client = persona("owner")
    before = db_state()

    response = client.post(settings_url(world), {"name": "Renamed"})

    assert response.status_code == 422
    assert "A cancelled account cannot be changed." in response.content.decode()
    assert db_state() == before


def test_the_settings_service_refuses_fields_outside_the_settings(world):
    before = db_state()

    with pytest.raises(services.ServiceError):
        services.update_managed_account(
            managed=world.managed, actor=Actor(user=world.users["owner"]), billing_mode="separate"
        )

    assert db_state() == before


# --- The list ----------------------------------------------------------------------------------------


def test_a_search_needs_at_least_three_characters(world, persona):
    response = persona("owner").get(list_url(world.manager), {"q": "al"})

    assert response.status_code == 200
    assert "Type at least 3 characters to search." in response.content.decode()
    assert sorted(listed_names(response)) == ["Alpine Voice", "Blue Harbor"]


def test_a_search_matches_the_name_case_insensitively(world, persona):
    response = persona("owner").get(list_url(world.manager), {"q": "ALP"})

    assert listed_names(response) == ["Alpine Voice"]
    assert "Type at least 3 characters" not in response.content.decode()


def test_a_search_matches_the_email_case_insensitively(world, persona):
    AccountFactory(managed_kind=True, manager=world.manager, name="Cobalt Clinics", email="desk@zebra-dental.example")

    response = persona("owner").get(list_url(world.manager), {"q": "Zebra-DENTAL"})

    assert listed_names(response) == ["Cobalt Clinics"]


def test_a_search_does_not_reach_another_managers_accounts(world, persona):
    response = persona("owner").get(list_url(world.manager), {"q": "Other"})

    assert listed_names(response) == []
    assert "No managed accounts match." in response.content.decode()


def test_a_too_short_search_does_not_empty_the_cancelled_list(world, persona):
    set_status(world.sibling, Account.Status.CANCELLED)

    response = persona("owner").get(list_url(world.manager), {"status": "cancelled", "q": "bl"})

    assert "Type at least 3 characters to search." in response.content.decode()
    assert listed_names(response) == ["Blue Harbor"]


def test_it_filters_on_status(world, persona):
    set_status(world.sibling, Account.Status.DISABLED)

    disabled = persona("owner").get(list_url(world.manager), {"status": "disabled"})
    enabled = persona("owner").get(list_url(world.manager), {"status": "enabled"})

    assert listed_names(disabled) == ["Blue Harbor"]
    assert listed_names(enabled) == ["Alpine Voice"]


def test_it_filters_on_billing_mode(world, persona):
    Account.objects.filter(pk=world.sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE)

    separate = persona("owner").get(list_url(world.manager), {"billing_mode": "separate"})
    rollup = persona("owner").get(list_url(world.manager), {"billing_mode": "rollup"})

    assert listed_names(separate) == ["Blue Harbor"]
    assert listed_names(rollup) == ["Alpine Voice"]


def test_it_sorts_by_name_both_ways(world, persona):
    for name in ("Zulu Zinc", "Mike Media", "Echo Energy"):
        AccountFactory(managed_kind=True, manager=world.manager, name=name)
    client = persona("owner")

    ascending = listed_names(client.get(list_url(world.manager), {"sort": "name"}))
    descending = listed_names(client.get(list_url(world.manager), {"sort": "-name"}))

    expected = ["Alpine Voice", "Blue Harbor", "Echo Energy", "Mike Media", "Zulu Zinc"]
    assert ascending == expected
    assert descending == list(reversed(expected))


def test_it_paginates_25_rows_a_page(world, persona):
    make_managed_accounts(world.manager, 60)  # 62 in all with Alpine Voice and Blue Harbor
    client = persona("owner")

    pages = [listed_names(client.get(list_url(world.manager), {"page": n})) for n in (1, 2, 3)]

    assert [len(page) for page in pages] == [25, 25, 12]
    assert len(set(pages[0]) | set(pages[1]) | set(pages[2])) == 62


def test_a_manager_without_managed_accounts_sees_the_empty_state(db):
    manager, owner = account_with_owner(name="Fresh Reseller", manager_kind=True)
    client = Client()
    client.force_login(owner)

    response = client.get(list_url(manager))

    assert response.status_code == 200
    assert "You have no managed accounts yet." in response.content.decode()


def test_a_manager_with_managed_accounts_does_not_see_the_empty_state(world, persona):
    response = persona("owner").get(list_url(world.manager))

    assert "You have no managed accounts yet." not in response.content.decode()
    assert "2 of 3000 managed accounts in use." in response.content.decode()


def test_the_list_runs_the_same_number_of_queries_for_5_and_for_3000_accounts(db):
    owner = UserFactory()
    client = Client()
    client.force_login(owner)
    counts = {}
    # Both managers first: the account switcher reads the person's memberships only when it has
    # more than one, so the two pages must be measured with the same memberships.
    managers = {size: AccountFactory(manager_kind=True, name=f"Reseller of {size}") for size in (5, 3000)}
    for size, manager in managers.items():
        MembershipFactory(user=owner, account=manager, role=Role.OWNER)
        make_managed_accounts(manager, size)
    for size, manager in managers.items():
        client.get(list_url(manager))  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            response = client.get(list_url(manager))
        assert response.status_code == 200
        assert len(listed_names(response)) == min(size, 25)
        counts[size] = len(queries)
    print(f"managed_list queries: {counts}")
    assert counts[5] == counts[3000]


# --- Standard and managed accounts stay what they are ---------------------------------------------


def test_a_standard_account_can_never_become_a_manager(world):
    world.standard.kind = Account.Kind.MANAGER
    world.standard.managed_account_limit = 3000

    with pytest.raises(ValidationError):
        world.standard.save()

    stored = Account.objects.get(pk=world.standard.pk)
    assert (stored.kind, stored.managed_account_limit) == (Account.Kind.STANDARD, None)


def test_a_standard_account_can_never_move_under_a_manager(world):
    world.standard.kind = Account.Kind.MANAGED
    world.standard.manager = world.manager
    world.standard.billing_mode = Account.BillingMode.ROLLUP

    with pytest.raises(ValidationError):
        world.standard.save()

    stored = Account.objects.get(pk=world.standard.pk)
    assert (stored.kind, stored.manager_id) == (Account.Kind.STANDARD, None)


def test_setting_only_the_manager_of_a_standard_account_is_refused(world):
    world.standard.manager = world.manager

    with pytest.raises(ValidationError):
        world.standard.save()

    assert Account.objects.get(pk=world.standard.pk).manager_id is None


def test_a_managed_account_never_changes_manager(world):
    world.managed.manager = world.other_manager

    with pytest.raises(ValidationError):
        world.managed.save()

    assert Account.objects.get(pk=world.managed.pk).manager == world.manager


@pytest.mark.parametrize("persona_name", ["managed_owner", "standard_owner"])
@pytest.mark.parametrize("page", ["managed_list", "managed_create"])
def test_accounts_that_are_not_managers_have_no_managed_account_pages(world, persona, persona_name, page):
    account = world.managed if persona_name == "managed_owner" else world.standard
    client = persona(persona_name)
    before = db_state()

    get = client.get(reverse(page, args=[account.public_id]))
    post = client.post(reverse("managed_create", args=[account.public_id]), valid_create_data())

    assert get.status_code == 404
    assert post.status_code == 404
    assert db_state() == before


@pytest.mark.parametrize("kind", ["standard", "managed"])
def test_the_create_service_refuses_a_non_manager(world, kind):
    account = world.standard if kind == "standard" else world.managed
    owner = world.users["standard_owner" if kind == "standard" else "managed_owner"]
    before = db_state()

    with pytest.raises(services.ServiceError, match="Only manager accounts"):
        services.create_managed_account(
            manager=account,
            name="Nested Co",
            owner_email="nested@example.com",
            owner_password=None,
            billing_mode=Account.BillingMode.ROLLUP,
            allow_custom_pricing=False,
            pricing_hidden=False,
            actor=Actor(user=owner),
        )

    assert db_state() == before
