"""The demo's closed months: every complete month since the demo's first account, oldest first,
closed by the same `close_month` command beat runs on the 1st (invoices and reseller invoices),
then paid as customers pay, but for a few accounts in trouble:

- each platform invoice of a demo account is paid by wire: its total credited to the payer's balance
  (an invoice-settlement entry keyed by the invoice) and the invoice marked paid by platform staff;
- the manager pre-funds its separately billed customers once (a credit transfer, keyed per account);
- the manager's customers pay its reseller invoices, all but the latest month's (not yet due).

Accounts in trouble (TROUBLE) pay nothing: their balances stay negative and their invoices open.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from accounts.actor import Actor
from accounts.demo import MANAGER_EMAIL, STAFF_EMAIL, demo_accounts
from accounts.models import Account, User
from billing.invoices import services as invoice_services
from billing.ledger import services as ledger
from billing.models import Invoice, LedgerEntry
from billing.periods import next_month


class Command(BaseCommand):
    help = (
        "Close every complete month since the demo data's first account, in order (close_month --inline), "
        "and record the demo customers' payments of all but the latest. Idempotent; run after simulate_usage --demo."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        first = demo_accounts().aggregate(first=Min("created_at"))["first"]
        if first is None:
            raise CommandError("Load the demo data first (manage.py demo_data).")
        months = complete_months_since(first.date(), timezone.now().date())
        for month in months:
            call_command("close_month", month=f"{month:%Y-%m}", inline=True, stdout=self.stdout, stderr=self.stderr)
        paid, funded = pay(months)
        self.stdout.write(f"Demo payments: {paid} invoice(s) marked paid, {funded} account(s) pre-funded.")


TROUBLE = ("Lumen Realty", "Juniper Schools", "Maple Dental")  # never pay: negative, invoices open
PREPAYMENT = Decimal("100.00")


def pay(months: list[date]) -> tuple[int, int]:
    """The demo customers' payments (module docstring); what it marked paid and pre-funded now."""
    owner = User.objects.get(email=MANAGER_EMAIL)
    staff = Actor.platform_staff(User.objects.get(email=STAFF_EMAIL))
    paying = demo_accounts().exclude(name__in=TROUBLE)
    invoices = Invoice.objects.filter(status=Invoice.Status.FINALIZED, bill_to__in=paying).select_related("bill_to")
    paid = funded = 0
    for invoice in invoices.platform().filter(period__in=months).order_by("period", "pk"):
        with transaction.atomic():
            if invoice.total > 0:
                ledger.post_entry(
                    account=invoice.bill_to,
                    kind=LedgerEntry.Kind.INVOICE_SETTLEMENT,
                    amount=invoice.total,
                    key=str(invoice.public_id),
                    description=f"Wire transfer for invoice {invoice.number}",
                    allow_overdraft=True,
                    actor=staff,
                )
            invoice_services.mark_invoice_paid(invoice=invoice, note="Wire transfer received", actor=staff)
        paid += 1
    for invoice in invoices.resale().filter(period__in=months[:-1]).order_by("period", "pk"):
        invoice_services.mark_invoice_paid(invoice=invoice, note="Bank transfer received", actor=Actor(user=owner))
        paid += 1
    manager = Account.objects.get(pk__in=paying.filter(kind=Account.Kind.MANAGER).values("pk"))
    separate = paying.filter(kind=Account.Kind.MANAGED, status=Account.Status.ENABLED).paying_own_usage()
    for account in separate.order_by("pk"):
        made = ledger.transfer(
            manager=manager,
            managed=account,
            amount=PREPAYMENT,
            key=f"demo-prepayment-{account.public_id}",
            reference="Prepaid credit",
            same_request_only=False,
            actor=Actor(user=owner),
        )
        funded += made.created
    return paid, funded


def complete_months_since(first: date, today: date) -> list[date]:
    """The first days of the months from `first`'s through the one before `today`'s."""
    month, this_month, months = first.replace(day=1), today.replace(day=1), []
    while month < this_month:
        months.append(month)
        month = next_month(month)
    return months
