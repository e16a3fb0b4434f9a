"""The audit log in words (issue 14 item 5): each event one sentence naming the real person, the
fields by the pages' names, no Python None/True/False, the resource by what people call it and
linked to its page; changes made while acting in both logs; a constant number of queries a page."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import audit, services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from tests.factories import UserFactory


@pytest.fixture
def maya(world):
    """The manager's owner, named as a person (the factories give random names)."""
    owner = world.users["owner"]
    owner.first_name, owner.last_name = "Maya", "Manager"
    owner.save(update_fields=["first_name", "last_name"])
    return owner


def audit_url(account: Account) -> str:
    return reverse("audit_log", args=[account.public_id])


def sentences(response) -> list[str]:
    """The log's rows as a person reads them: the sentence column's text, tags taken out."""
    assert response.status_code == 200, response.status_code
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", response.content.decode(), flags=re.S)[1:]  # the head row first
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S) for row in rows]
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", cell[1])).split()) for cell in cells if len(cell) > 1]


def links(response) -> dict[str, str]:
    """The sentences' links: text -> href."""
    body = response.content.decode()
    table = body[body.index("<table") : body.index("</table>")]
    return {html.unescape(text): href for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', table)}


def page_text(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


# --- Changes made while acting, in both logs --------------------------------------------------------------


def test_a_rename_made_while_acting_shows_in_both_logs_naming_the_real_person(world, persona, maya):
    acting = persona("manager_acting")

    response = acting.post(reverse("account_settings", args=[world.managed.public_id]), {"name": "Alpine Voice Ltd"})

    assert response.status_code == 302, response.status_code
    said = "Maya Manager (acting as Alpine Voice Ltd) renamed the account from 'Alpine Voice' to 'Alpine Voice Ltd'"
    assert said in sentences(acting.get(audit_url(world.managed)))
    acting.post(reverse("acting_return"))
    assert said in sentences(acting.get(audit_url(world.manager)))


def test_an_invitation_sent_while_acting_shows_in_both_logs(world, persona, maya):
    acting = persona("manager_acting")
    invite = reverse("member_invite", args=[world.managed.public_id])

    assert acting.post(invite, {"email": "new@alpine.example.com", "role": "admin"}).status_code == 302

    managed_log = acting.get(audit_url(world.managed))
    invited = [s for s in sentences(managed_log) if "invited" in s]
    assert invited == ["Maya Manager (acting as Alpine Voice) invited new@alpine.example.com as Admin"]
    assert links(managed_log)["new@alpine.example.com"] == reverse("members", args=[world.managed.public_id])

    acting.post(reverse("acting_return"))
    manager_log = acting.get(audit_url(world.manager))
    assert invited[0] in sentences(manager_log)
    assert "new@alpine.example.com" not in links(manager_log)  # the manager has no page of Alpine's members


def test_logging_in_as_and_returning_read_as_such_in_both_logs(world, persona, maya):
    acting = persona("manager_acting")
    acting.post(reverse("acting_return"))

    manager_log = acting.get(audit_url(world.manager))
    assert sentences(manager_log)[:2] == [
        "Maya Manager returned from Alpine Voice",
        "Maya Manager logged in as Alpine Voice",
    ]
    detail = reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    assert links(manager_log)["Alpine Voice"] == detail
    managed_log = persona("managed_owner").get(audit_url(world.managed))
    assert sentences(managed_log)[:2] == [
        "Maya Manager (Acme Reseller) returned from the account",
        "Maya Manager (Acme Reseller) logged in as the account",
    ]


def test_the_managers_log_keeps_its_managed_accounts_own_changes_out(world, persona):
    services.update_account_settings(
        account=world.managed, actor=Actor(user=world.users["managed_owner"]), name="Alpine by its owner"
    )

    shown = sentences(persona("owner").get(audit_url(world.manager)))

    assert not [s for s in shown if "Alpine by its owner" in s]


def test_an_admin_of_the_manager_reads_the_same_log(world, persona, maya):
    acting = persona("manager_acting")
    acting.post(reverse("account_settings", args=[world.managed.public_id]), {"name": "Alpine Two"})

    shown = sentences(persona("admin").get(audit_url(world.manager)))

    assert "Maya Manager (acting as Alpine Two) renamed the account from 'Alpine Voice' to 'Alpine Two'" in shown


# --- Sentences, labels and values --------------------------------------------------------------------------


def test_a_managed_account_creation_reads_with_the_pages_labels_and_no_python_values(world, persona, maya):
    owner = persona("owner")
    form = {"name": "Nova Dial", "email": "owner@nova.example.com", "billing_mode": "rollup", "pricing_hidden": "on"}

    assert owner.post(reverse("managed_create", args=[world.manager.public_id]), form).status_code == 302

    response = owner.get(audit_url(world.manager))
    nova = Account.objects.get(name="Nova Dial")
    assert (
        "Maya Manager created the managed account Nova Dial (Owner e-mail owner@nova.example.com, Billing Roll-up, "
        "Custom pricing not allowed, Pricing hidden)"
    ) in sentences(response)
    assert links(response)["Nova Dial"] == reverse("managed_detail", args=[world.manager.public_id, nova.public_id])
    text = page_text(response)
    for raw in ("None", "True", "False", "billing_mode", "allow_custom_pricing", "managed_account.created"):
        assert raw not in text, raw


def test_the_managed_account_reads_its_managers_changes_as_the_managers(world, persona, maya):
    persona("owner").post(
        reverse("managed_settings", args=[world.manager.public_id, world.managed.public_id]),
        {"name": "Alpine Voice", "pricing_hidden": "on"},
    )

    shown = sentences(persona("managed_owner").get(audit_url(world.managed)))

    assert shown == ["Maya Manager (Acme Reseller) changed the account: Pricing from visible to hidden"]


def test_members_and_keys_are_named_by_email_and_name_and_linked(world, persona):
    owner = persona("standard_owner")
    standard, person = world.standard, world.users["standard_owner"]
    member = UserFactory(email="bea@solo.example.com", first_name="Bea", last_name="Billing")
    membership = Membership.objects.create(user=member, account=standard, role=Role.BILLING)
    services.change_member_role(membership=membership, role=Role.ADMIN, actor=Actor(user=person))
    services.remove_member(membership=membership, actor=Actor(user=person))
    key, _ = services.create_api_key(account=standard, name="Billing sync", actor=Actor(user=person))
    services.revoke_api_key(key=key, actor=Actor(user=person))

    response = owner.get(audit_url(standard))

    who = person.display_name
    assert sentences(response)[:4] == [
        f"{who} revoked the API key 'Billing sync'",
        f"{who} created the API key 'Billing sync'",
        f"{who} removed bea@solo.example.com (Admin) from the account",
        f"{who} changed the role of bea@solo.example.com from Billing to Admin",
    ]
    assert links(response)["the API key 'Billing sync'"] == reverse("api_keys", args=[standard.public_id])
    assert links(response)["bea@solo.example.com"] == reverse("members", args=[standard.public_id])


def test_values_python_would_print_read_as_words(world, persona):
    """Flags, empty values and times recorded by any writer: on/off, (none), one-line UTC times."""
    audit.record(
        account=world.manager,
        actor=Actor(user=world.users["owner"]),
        change_type=audit.ChangeType.ACCOUNT_UPDATED,
        resource=world.manager,
        changes=[
            {"field": "admins_can_log_in_as", "from": False, "to": True},
            {"field": "name", "from": None, "to": "Acme Reseller"},
        ],
    )
    audit.record(
        account=world.manager,
        actor=Actor.platform_staff(),
        change_type=audit.ChangeType.ACCOUNT_LIMIT_CHANGED,
        resource=world.manager,
        changes=[{"field": "managed_account_limit", "from": 3000, "to": 10}],
    )

    response = persona("owner").get(audit_url(world.manager))

    who = world.users["owner"].display_name
    assert sentences(response) == [
        "Mission Control changed Managed-account limit from 3,000 to 10",
        f"{who} changed the account: Admins may log in as managed accounts from off to on; "
        "Business name from (none) to 'Acme Reseller'",
    ]
    times = re.findall(r'<td class="audit-when">([^<]*)</td>', response.content.decode())
    assert len(times) == 2 and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", t) for t in times)


def test_the_type_filter_offers_types_in_words(world, persona):
    body = persona("owner").get(audit_url(world.manager)).content.decode()

    assert '<option value="managed_account.disabled">Managed account disabled</option>' in body
    assert ">managed_account.disabled<" not in body


def test_a_managed_accounts_recent_activity_uses_the_same_sentences(world, persona, maya):
    owner = persona("owner")
    owner.post(reverse("managed_disable", args=[world.manager.public_id, world.managed.public_id]))

    response = owner.get(reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id]))

    text = page_text(response)
    assert "Maya Manager disabled the account" in text
    assert "managed_account.disabled" not in text and "(acting)" not in text


def test_names_are_escaped(world, persona):
    services.update_account_settings(
        account=world.standard, actor=Actor(user=world.users["standard_owner"]), name="<b>Bold</b> & Co"
    )

    body = persona("standard_owner").get(audit_url(world.standard)).content.decode()

    assert "<b>Bold</b>" not in body and "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in body


# --- Queries ----------------------------------------------------------------------------------------------


def _events(world, count: int) -> None:
    """`count` events of the kinds a manager's log mixes: its own, its managed accounts', acting."""
    owner, managed_owner = world.users["owner"], world.users["managed_owner"]

    def event(n: int) -> AuditEvent:
        common = {"change_made_by": AuditEvent.MadeBy.ACCOUNT_MANAGER, "user": owner, "user_email": owner.email}
        if n % 3 == 0:
            return AuditEvent(
                account=world.manager, related_account=world.managed, change_type="managed_account.updated",
                resource_type="account", resource_id=str(world.managed.public_id),
                changes=[{"field": "pricing_hidden", "from": False, "to": True}], **common,
            )  # fmt: skip
        if n % 3 == 1:
            return AuditEvent(
                account=world.managed, change_type="invitation.created", resource_type="invitation", resource_id="1",
                resource_label="x@alpine.example.com", acting_as=managed_owner,
                changes=[{"field": "email", "from": None, "to": "x@alpine.example.com"}], **common,
            )  # fmt: skip
        return AuditEvent(
            account=world.managed, related_account=world.manager, change_type="api_key.created",
            resource_type="apikey", resource_id="2", resource_label="Sync",
            changes=[{"field": "name", "from": None, "to": "Sync"}], **common,
        )  # fmt: skip

    AuditEvent.objects.bulk_create(event(n) for n in range(count))


@pytest.mark.parametrize("count", [3, 30])
def test_the_log_page_runs_a_constant_number_of_queries(world, persona, django_assert_num_queries, count):
    client = persona("owner")
    _events(world, count)
    client.get(audit_url(world.manager))  # the session and anything cached once per process

    # the session, the user, the access check and the navigation; the count, one page of events (joined)
    with django_assert_num_queries(QUERIES_PER_PAGE):
        response = client.get(audit_url(world.manager))

    assert len(sentences(response)) == count


def test_the_managed_account_page_runs_as_many_queries_with_3_and_30_events(world, persona, django_assert_num_queries):
    client = persona("owner")
    url = reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    _events(world, 3)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    _events(world, 27)
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(url)
    assert page_text(response).count("(acting as Alpine Voice)") == 3  # ten events shown, a third acting


QUERIES_PER_PAGE = 6
