"""The billing profile page (issue 12 item 7): legal name, address, tax id and invoice recipients,
edited by the account's billing people (a manager logged in as a managed account too, audited as
the manager), refused with the typed values kept, and audited in words."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.audit import ChangeType
from accounts.billing_profile import invoice_recipients
from accounts.models import AuditEvent, BillingProfile

VALID = {
    "legal_name": "Acme Reseller GmbH",
    "address_line1": "Hauptstraße 5",
    "address_line2": "",
    "city": "Berlin",
    "postal_code": "10115",
    "region": "",
    "country": "de",
    "tax_id": "DE123456789",
    "invoice_emails": "ap@acme.example.com\nFinance@Acme.example.com",
    "payment_terms_days": "30",
}


def url(account) -> str:
    return reverse("billing_profile", args=[account.public_id])


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.mark.parametrize("who", ["owner", "admin", "billing"])
def test_the_accounts_billing_people_save_it_and_it_is_audited(world, persona, who):
    client = persona(who)
    assert client.get(url(world.manager)).status_code == 200

    response = client.post(url(world.manager), VALID)

    assert response.status_code == 302
    profile = BillingProfile.objects.get(account=world.manager)
    assert (profile.legal_name, profile.country, profile.tax_id) == ("Acme Reseller GmbH", "DE", "DE123456789")
    assert profile.invoice_emails == ["ap@acme.example.com", "finance@acme.example.com"]
    assert profile.payment_terms_days == 30
    event = AuditEvent.objects.get(account=world.manager, change_type=ChangeType.BILLING_PROFILE_CHANGED)
    assert event.user == world.users[who if who != "owner" else "owner"]
    assert {c["field"] for c in event.changes} >= {"legal_name", "invoice_emails", "payment_terms_days"}
    assert invoice_recipients(world.manager) == ["ap@acme.example.com", "finance@acme.example.com"]


def test_saving_the_same_values_again_records_nothing_more(world, persona):
    client = persona("owner")
    client.post(url(world.manager), VALID)
    client.post(url(world.manager), VALID)

    assert AuditEvent.objects.filter(change_type=ChangeType.BILLING_PROFILE_CHANGED).count() == 1


def test_the_audit_log_says_it_in_words(world, persona):
    client = persona("owner")
    client.post(url(world.manager), VALID)

    page = text(client.get(reverse("audit_log", args=[world.manager.public_id])))

    assert "changed the billing profile of the account" in page
    assert "Legal name from (none) to &#x27;Acme Reseller GmbH&#x27;" in page or "Legal name from (none) to" in page
    assert "Invoice recipients" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("invoice_emails", "ap@acme.example.com\nnot-an-address", "is not an e-mail address"),
        ("invoice_emails", "\n".join(f"p{n}@acme.example.com" for n in range(6)), "At most 5 invoice recipients"),
        ("country", "Deutschland", "two-letter code"),
        ("legal_name", "Acme\r\nBcc: victim@example.com", "line breaks"),
        ("payment_terms_days", "400", "less than or equal to 365"),
        ("payment_terms_days", "-1", "greater than or equal to 0"),
    ],
)
def test_bad_input_is_refused_and_what_was_typed_stays(world, persona, field, value, message):
    response = persona("owner").post(url(world.manager), {**VALID, field: value})

    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert "Hauptstraße 5" in page and "DE123456789" in page  # the other fields as typed
    assert not BillingProfile.objects.filter(account=world.manager).exists()


def test_reporting_members_may_not_and_outsiders_see_nothing(world, persona):
    assert persona("reporting").get(url(world.manager)).status_code == 403
    assert persona("reporting").post(url(world.manager), VALID).status_code == 403
    assert persona("other_tenant").get(url(world.manager)).status_code == 404
    assert persona("anonymous").get(url(world.manager)).status_code == 302
    assert not BillingProfile.objects.exists()


def test_payment_terms_are_a_managers_only(world, persona):
    client = persona("standard_owner")
    page = client.get(url(world.standard)).content.decode()
    assert "Payment terms" not in page

    client.post(url(world.standard), {**VALID, "payment_terms_days": "60"})

    assert BillingProfile.objects.get(account=world.standard).payment_terms_days == 14


def test_a_manager_acting_as_a_managed_account_edits_its_profile_as_the_manager(world, persona):
    client = persona("manager_acting")

    response = client.post(url(world.managed), {**VALID, "legal_name": "Alpine Voice AG"})

    assert response.status_code == 302
    assert BillingProfile.objects.get(account=world.managed).legal_name == "Alpine Voice AG"
    event = AuditEvent.objects.get(account=world.managed, change_type=ChangeType.BILLING_PROFILE_CHANGED)
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    assert event.user == world.users["owner"] and event.acting_as == world.users["managed_owner"]


def test_without_recipients_invoices_go_to_the_owner(world):
    assert invoice_recipients(world.standard) == [world.users["standard_owner"].email]


def test_the_billing_menu_links_to_it_for_billing_people_only(world, persona):
    link = f'href="{url(world.manager)}"'
    assert link in persona("billing").get(reverse("invoice_list", args=[world.manager.public_id])).content.decode()
    dashboard = reverse("dashboard", args=[world.manager.public_id])
    assert link not in persona("reporting").get(dashboard).content.decode()
