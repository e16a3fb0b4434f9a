"""Every finalized invoice is e-mailed, after the close commits, to its bill-to's invoice recipients
(its billing profile; its owner without one), with its PDF attached as the bill-to sees it
(issue 12 item 7). A hidden-pricing account's e-mail names no amount but the total, and its PDF
is the quantities-only one. A repeated task sends nothing twice; a mail server that cannot be
reached leaves the invoice to be sent on the retry. Tested with Django's locmem outbox, with the
close run end to end (the close_month task, eager) and once through a real Celery worker."""

# ruff: noqa: F811  (fixtures imported from test_invoice_pages)

from __future__ import annotations

import re
import time
from io import BytesIO

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings
from pypdf import PdfReader

from accounts import billing_profile as profiles
from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import invoice_party
from billing.invoices.emails import email_invoices
from billing.models import Invoice
from billing.tasks import close_month
from tests.test_invoice_pages import MARCH, _owner, usage

AMOUNT = re.compile(r"USD [\d,]+\.\d\d")


def _invoice_mails(outbox=None) -> list:
    """The invoice e-mails (the close may also send others: an alert that service is blocked)."""
    return [m for m in (mail.outbox if outbox is None else outbox) if m.subject.startswith("Invoice ")]


def _pdf(message) -> str:
    [(filename, content, mimetype)] = message.attachments
    assert mimetype == "application/pdf" and filename.endswith(".pdf")
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(BytesIO(content)).pages))


def _close(world, capture) -> None:
    usage(
        world.manager,
        (world.manager, "sms.outbound", "7"),
        (world.managed, "voice.outbound", "250"),
        (world.sibling, "voice.outbound", "33.3"),
        (world.sibling, "sms.outbound", "1001"),
    )
    with capture(execute=True):
        invoice_party(account=world.manager, month=MARCH)


def test_each_invoice_goes_to_its_bill_tos_recipients_with_its_pdf(world, django_capture_on_commit_callbacks):
    profiles.update_billing_profile(
        account=world.manager,
        values={"invoice_emails": ["ap@acme.example.com", "cfo@acme.example.com"], "legal_name": "Acme GmbH"},
        actor=Actor(user=world.users["owner"]),
    )

    _close(world, django_capture_on_commit_callbacks)

    by_to = {tuple(m.to): m for m in _invoice_mails()}
    assert set(by_to) == {
        ("ap@acme.example.com", "cfo@acme.example.com"),  # the manager's profile
        (world.users["managed_owner"].email,),  # no profile: the owner
        (world.users["sibling_owner"].email,),
    }
    platform = Invoice.objects.platform().get(bill_to=world.manager)
    message = by_to[("ap@acme.example.com", "cfo@acme.example.com")]
    assert message.subject.startswith(f"Invoice {platform.number} from ")
    assert "USD 6.87" in message.subject and f"due {platform.due_date:%-d %B %Y}" in message.subject
    assert f"{settings.SITE_URL}/a/{world.manager.public_id}/invoices/{platform.public_id}/" in message.body
    assert "Hello Acme GmbH" in message.body
    assert message.content_subtype == "plain" and getattr(message, "alternatives", []) == []
    pdf = _pdf(message)
    assert f"Invoice {platform.number}" in pdf and "Total USD 6.87" in pdf
    resale = Invoice.objects.resale().get(bill_to=world.sibling)
    blue = by_to[(world.users["sibling_owner"].email,)]
    assert f"Invoice {resale.number} from Acme GmbH" in blue.subject  # the issuer's legal name, as issued
    assert "Pay USD 4.34 to Acme GmbH by the due date" in blue.body
    assert Invoice.objects.filter(emailed_at__isnull=True).count() == 0


def test_a_hidden_pricing_accounts_email_has_no_amount_but_the_total(world, django_capture_on_commit_callbacks):
    Account.objects.filter(pk=world.sibling.pk).update(pricing_hidden=True)

    _close(world, django_capture_on_commit_callbacks)

    [message] = [m for m in _invoice_mails() if m.to == [world.users["sibling_owner"].email]]
    resale = Invoice.objects.resale().get(bill_to=world.sibling)
    assert set(AMOUNT.findall(message.subject + message.body)) == {"USD 4.34"}
    pdf = _pdf(message)
    assert set(AMOUNT.findall(pdf)) == {f"USD {resale.total}"}  # the quantities-only PDF
    assert "Quantities only" in pdf and "0.004" not in pdf and "markup" not in message.body.lower()


def test_a_repeated_task_sends_nothing_twice(world, django_capture_on_commit_callbacks):
    _close(world, django_capture_on_commit_callbacks)
    sent = len(_invoice_mails())

    assert email_invoices(list(Invoice.objects.values_list("pk", flat=True))) == 0
    assert len(_invoice_mails()) == sent == 3


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=9, EMAIL_TIMEOUT=2
)
def test_an_unreachable_mail_server_leaves_the_invoice_to_the_retry(world):
    usage(world.standard, (world.standard, "sms.outbound", "5"))
    invoice = invoice_party(account=world.standard, month=MARCH)  # on_commit not run: the task is called below

    with pytest.raises(OSError):
        email_invoices.run([invoice.pk])

    invoice.refresh_from_db()
    assert invoice.emailed_at is None  # the claim was given back: the retry sends it
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        assert email_invoices.run([invoice.pk]) == 1
    assert [m.to for m in _invoice_mails()] == [[_owner(world.standard).email]]


def test_the_monthly_close_emails_every_invoice_it_issues(world, django_capture_on_commit_callbacks):
    usage(world.standard, (world.standard, "sms.outbound", "5"))
    usage(world.manager, (world.managed, "voice.outbound", "250"))

    with django_capture_on_commit_callbacks(execute=True):
        close_month(MARCH.isoformat())

    issued = Invoice.objects.issued().filter(period=MARCH)
    assert issued.count() == 3 and not issued.filter(emailed_at__isnull=True).exists()
    numbers = {m.subject.split()[1] for m in _invoice_mails()}
    assert numbers == set(issued.values_list("number", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_invoice_email_through_the_broker(catalogue, world, real_worker, mailoutbox):
    usage(world.standard, (world.standard, "sms.outbound", "5"))

    invoice = invoice_party(account=world.standard, month=MARCH)

    deadline = time.monotonic() + 30
    while not _invoice_mails(mailoutbox) and time.monotonic() < deadline:
        time.sleep(0.1)
    [message] = _invoice_mails(mailoutbox)
    assert message.to == [_owner(world.standard).email]
    assert invoice.number in message.subject and len(message.attachments) == 1
