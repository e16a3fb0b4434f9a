from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.expressions import Combinable, Expression
from django.db.models.fields import NOT_PROVIDED
from django.utils import timezone

from accounts.models import Account

if TYPE_CHECKING:
    DecimalColumn: TypeAlias = models.DecimalField[str | float | Decimal | Combinable, Decimal]


# Unit prices carry up to 6 decimal places (USD 0.004 per message is normal); a record's cost is
# quantity x rate, kept exact (6 + 6 = 12 places). Rounding to cents happens only on invoice and
# ledger lines (billing.money.to_cents).
def rate_field() -> DecimalColumn:
    return models.DecimalField(max_digits=14, decimal_places=6)


def quantity_field() -> DecimalColumn:
    return models.DecimalField(max_digits=20, decimal_places=6)


def cost_field() -> DecimalColumn:
    return models.DecimalField(max_digits=30, decimal_places=12)


def money_field(*, default: Decimal | None = None, help_text: str = "") -> DecimalColumn:
    """Ledger, balance and invoice amounts: cents. With no default the field has none (as Django's)."""
    return models.DecimalField(
        max_digits=20, decimal_places=2, default=NOT_PROVIDED if default is None else default, help_text=help_text
    )


class Product(models.Model):
    sku = models.SlugField(max_length=64, unique=True, help_text="e.g. voice.outbound")
    name = models.CharField(max_length=255)
    unit = models.CharField(max_length=32, help_text="What one unit of quantity is: minute, message, number-month")
    currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Rate(models.Model):
    """A unit price from an instant on. With no account it is the platform list price; with a
    manager or standard account, a negotiated rate; with a managed account, a custom rate (used
    only while that account may have custom pricing)."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="rates")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="rates")
    unit_price = rate_field()
    effective_from = models.DateTimeField(help_text="UTC; applies to usage that starts at or after this instant.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product__sku", "account_id", "effective_from"]
        constraints = [
            models.CheckConstraint(name="rate_unit_price_not_negative", condition=Q(unit_price__gte=0)),
            models.UniqueConstraint(
                fields=["product", "account", "effective_from"],
                condition=Q(account__isnull=False),
                name="rate_one_per_account_product_instant",
            ),
            models.UniqueConstraint(
                fields=["product", "effective_from"],
                condition=Q(account__isnull=True),
                name="rate_one_list_price_per_product_instant",
            ),
        ]
        indexes = [models.Index(fields=["account", "product", "effective_from"], name="rate_lookup")]

    def __str__(self) -> str:
        whom = self.account or "list price"
        return f"{self.product.sku} {self.unit_price} for {whom} from {self.effective_from:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        account = self.account if self.account_id else None
        if account is not None and account.is_managed and not account.allow_custom_pricing:
            raise ValidationError("This managed account may not have custom pricing; it uses its manager's rates.")


class UsageBatch(models.Model):
    """One accepted submission of usage (API call, CSV upload or simulator run)."""

    class Source(models.TextChoices):
        API = "api", "API"
        CSV = "csv", "CSV upload"
        SIMULATOR = "simulator", "Simulator"

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    submitted_by_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_batches")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=10, choices=Source.choices)
    filename = models.CharField(max_length=255, blank=True)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "usage batches"

    def __str__(self) -> str:
        return f"{self.get_source_display()} of {self.created_at:%Y-%m-%d %H:%M} UTC ({self.accepted} records)"


class UsageRecord(models.Model):
    """One metered event, rated when it arrived: the rate and cost stay with it for good."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    # No single-column indexes: (account, started_at) and (account, idempotency key) lead with the
    # account, and products are never deleted; each index is a cost on every ingested record.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_records", db_index=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", db_index=False)
    quantity = quantity_field()
    started_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=100)
    direction = models.CharField(max_length=8, choices=Direction.choices, blank=True)
    country = models.CharField(max_length=2, blank=True)
    destination = models.CharField(max_length=32, blank=True)
    rate = rate_field()
    cost = cost_field()
    batch = models.ForeignKey(UsageBatch, on_delete=models.PROTECT, related_name="records")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # With the partition key (PostgreSQL partitions by month of start, billing.usage.partitions):
            # a re-sent record is refused by it; ingestion finds a key stored in any other month.
            models.UniqueConstraint(
                fields=["account", "idempotency_key", "started_at"], name="usage_idempotency_key_per_account"
            ),
            models.CheckConstraint(name="usage_quantity_not_negative", condition=Q(quantity__gte=0)),
        ]
        indexes = [
            models.Index(fields=["account", "-started_at", "-id"], name="usage_account_time"),
            # Newest-first pages across many accounts (a manager's all-accounts records page).
            models.Index(fields=["-started_at", "-id"], name="usage_time"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.product_id} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class DailyUsage(models.Model):
    """Per account, product and UTC day: kept exact in the same transaction as the records it sums,
    so reports and the monthly close never scan raw records."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="daily_usage")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    quantity = models.DecimalField(max_digits=24, decimal_places=6)
    cost = models.DecimalField(max_digits=34, decimal_places=12)
    records = models.PositiveIntegerField()

    class Meta:
        verbose_name = verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(fields=["account", "product", "day"], name="daily_usage_account_product_day")
        ]
        # The cost in the index (PostgreSQL): what the manager pays by day (the overview's chart) is
        # read from the index alone. A changed cost is then no heap-only update: one more index write.
        indexes = [models.Index(fields=["account", "day"], include=["cost"], name="daily_usage_account_day_cost")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.product_id} {self.day}: {self.quantity}"


class MonthlyUsage(models.Model):
    """Per account, product and UTC calendar month (`month` is its first day): kept exact in the same
    transaction as the daily totals, so a month across 3,000 accounts is 30,000 rows, not 300,000."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="monthly_usage")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    month = models.DateField()
    quantity = models.DecimalField(max_digits=24, decimal_places=6)
    cost = models.DecimalField(max_digits=34, decimal_places=12)
    records = models.PositiveIntegerField()

    class Meta:
        verbose_name = verbose_name_plural = "monthly usage"
        constraints = [
            models.UniqueConstraint(fields=["account", "product", "month"], name="monthly_usage_account_product_month"),
            models.CheckConstraint(name="monthly_usage_month_is_first_day", condition=Q(month__day=1)),
        ]
        indexes = [
            models.Index(fields=["account", "month"], name="monthly_usage_account_month"),
            # A month across all accounts (the overview's top spenders, the limits page), index-only.
            models.Index(fields=["month", "account"], include=["cost", "records"], name="monthly_usage_month_covering"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.product_id} {self.month:%Y-%m}: {self.quantity}"


class Balance(models.Model):
    """The cached sum of an account's ledger entries, changed only together with a new entry, under
    this row's lock. Roll-up managed accounts have none: their charges land on their manager's."""

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="balance")
    amount = money_field(default=Decimal("0.00"))
    credit_limit = money_field(default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="balance_credit_limit_not_negative", condition=Q(credit_limit__gte=0))
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.currency} {self.amount}"

    @property
    def available_credit(self) -> Decimal:
        return self.amount + self.credit_limit


class LedgerQuerySet(models.QuerySet["LedgerEntry"]):
    """No bulk update or delete either: the balance must always equal the sum of the entries."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise ValidationError("Ledger entries never change; post a correcting entry instead.")

    def delete(self) -> NoReturn:
        raise ValidationError("Ledger entries are never deleted; post a correcting entry instead.")


class LedgerEntry(models.Model):
    """One money movement, never changed or deleted. Positive amounts credit the account, negative
    ones debit it. The idempotency key makes a repeated request (a webhook delivered twice, a task
    retried) post nothing twice."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        USAGE_CHARGE = "usage_charge", "Usage charge"
        TRANSFER_IN = "transfer_in", "Transfer in"
        TRANSFER_OUT = "transfer_out", "Transfer out"
        ADJUSTMENT = "adjustment", "Adjustment"
        REFUND = "refund", "Refund"
        INVOICE_SETTLEMENT = "invoice_settlement", "Invoice settlement"
        CREDIT_NOTE = "credit_note", "Credit note"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = money_field()
    currency = models.CharField(max_length=3, default="USD")
    idempotency_key = models.CharField(max_length=200)
    description = models.CharField(max_length=255)
    # The other account of a transfer, or the managed account whose usage a roll-up charge is for.
    related_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="related_ledger_entries"
    )
    period = models.DateField(null=True, blank=True, help_text="First day of the month a usage charge is for.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="ledger_idempotency_key_per_account"),
            models.CheckConstraint(name="ledger_amount_not_zero", condition=~Q(amount=0)),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="ledger_account_created"),
            models.Index(fields=["account", "kind", "related_account", "period"], name="ledger_usage_charges"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.currency} {self.amount} on {self.created_at:%Y-%m-%d}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("Ledger entries never change; post a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValidationError("Ledger entries are never deleted; post a correcting entry instead.")


class CreditTransferQuerySet(models.QuerySet["CreditTransfer"]):
    def of(self, account: Account) -> CreditTransferQuerySet:
        """The transfers `account` is a party to: as the manager, or as the managed account."""
        return self.filter(Q(manager=account) | Q(managed=account))


class CreditTransfer(models.Model):
    """Credit moved between a manager and one of its separately billed managed accounts, either
    way: the two ledger entries it posted, and what was asked. Its id is its debit leg's. The
    idempotency key (the page form's, or an API client's `Idempotency-Key`) is unique per manager:
    a repeated request finds the transfer it made instead of moving money twice."""

    class Direction(models.TextChoices):
        TO_MANAGED = "to_managed", "To the managed account"
        TO_MANAGER = "to_manager", "To the manager"

    public_id = models.UUIDField(unique=True, editable=False)
    manager = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    managed = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_transfers")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    amount = money_field()
    currency = models.CharField(max_length=3, default="USD")
    reference = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=191, null=True, blank=True)
    debit = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    credit = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_index=True)

    objects = CreditTransferQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["manager", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="credit_transfer_key_per_manager",
            ),
            models.CheckConstraint(name="credit_transfer_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [
            models.Index(fields=["manager", "-created_at"], name="credit_transfer_manager"),
            models.Index(fields=["managed", "-created_at"], name="credit_transfer_managed"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.currency} {self.amount}"

    @property
    def sender(self) -> Account:
        return self.manager if self.direction == self.Direction.TO_MANAGED else self.managed

    @property
    def receiver(self) -> Account:
        return self.managed if self.direction == self.Direction.TO_MANAGED else self.manager


class InvoiceSequence(models.Model):
    """The last invoice number an issuer gave out: numbers are drawn under this row's lock in the
    transaction that finalizes the invoice, so they have no gaps."""

    issuer_key = models.CharField(max_length=40, unique=True, help_text='"platform" or "account:<id>"')
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.issuer_key}: {self.last_number}"


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    """The recurring rules about invoices, named once."""

    def platform(self) -> InvoiceQuerySet:
        """Issued by the platform (a reseller invoice's issuer is the manager)."""
        return self.filter(issuer__isnull=True)

    def resale(self) -> InvoiceQuerySet:
        """Issued by a manager to one of its roll-up managed accounts."""
        return self.filter(issuer__isnull=False)

    def issued(self) -> InvoiceQuerySet:
        """Past draft: what people see (a draft exists only inside the transaction building it)."""
        return self.exclude(status=Invoice.Status.DRAFT)

    def closed_for(
        self, *, payers: Iterable[int] | Expression, months: Iterable[date] | None = None
    ) -> InvoiceQuerySet:
        """The issued platform invoices of these payers (and months): a payer's month is closed once
        it has one, and its usage is refused from then on."""
        closed = self.platform().issued().filter(bill_to_id__in=payers)
        return closed if months is None else closed.filter(period__in=months)


class Invoice(models.Model):
    """One per issuer, billed party and UTC calendar month. The platform issues it (issuer empty)
    to every account that holds its own balance; a roll-up managed account's usage is a section of
    its manager's invoice. A manager issues a reseller invoice (issuer = the manager) to each of its
    roll-up managed accounts, at its resale prices. A finalized invoice never changes, but for its
    status: finalized -> paid or void (billing.invoices.services.TRANSITIONS)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    class PaymentStatus(models.TextChoices):
        """What the customer acts on (`payment_status`), derived from the state and the due date."""

        DUE = "due", "Due"
        OVERDUE = "overdue", "Overdue"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    issuer = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="issued_invoices")
    bill_to = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    period = models.DateField(help_text="First day of the invoiced month (UTC).")
    number = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3, default="USD")
    opening_balance = money_field(default=Decimal("0.00"))
    credits = money_field(default=Decimal("0.00"), help_text="Top-ups, transfers, adjustments")
    charges = money_field(default=Decimal("0.00"), help_text="Usage charges of the period")
    closing_balance = money_field(default=Decimal("0.00"))
    total = money_field(default=Decimal("0.00"))
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    status_note = models.CharField(max_length=255, blank=True, help_text="Why it was voided, or how it was paid")
    markup_percent = models.DecimalField(
        max_digits=6, decimal_places=2, null=True, blank=True, help_text="On a reseller invoice: the markup applied"
    )
    # Fixed when finalized (billing.invoices.lines.stamp_terms): a later profile edit leaves them.
    issue_date = models.DateField(null=True, blank=True, help_text="The UTC day it was finalized")
    due_date = models.DateField(null=True, blank=True, help_text="The issue date plus the issuer's payment terms")
    issuer_details = models.JSONField(default=dict, blank=True, help_text="The issuer's billing profile, as issued")
    bill_to_details = models.JSONField(default=dict, blank=True, help_text="The bill-to's billing profile, as issued")
    emailed_at = models.DateTimeField(null=True, blank=True, help_text="When it was e-mailed to the bill-to")

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-period", "-id"]
        constraints = [
            # The last line of defence against billing a party twice for a month.
            models.UniqueConstraint(
                fields=["bill_to", "period"], condition=Q(issuer__isnull=True), name="invoice_one_platform_invoice"
            ),
            models.UniqueConstraint(
                fields=["issuer", "bill_to", "period"],
                condition=Q(issuer__isnull=False),
                name="invoice_one_per_issuer_bill_to_period",
            ),
            models.CheckConstraint(name="invoice_period_is_first_day", condition=Q(period__day=1)),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.number or '(draft)'} to {self.bill_to_id} for {self.period:%Y-%m}"

    def payment_status_on(self, today: date) -> str:
        """The one rule of the status a customer reads (page, list, PDF, e-mail, API): paid and void
        as recorded; a finalized invoice is overdue once its due date has passed, due until then
        (and due when it has no due date)."""
        if self.status in (self.Status.PAID, self.Status.VOID):
            return str(self.status)
        if self.due_date is not None and today > self.due_date:
            return self.PaymentStatus.OVERDUE
        return self.PaymentStatus.DUE

    @property
    def payment_status(self) -> str:
        return self.payment_status_on(timezone.now().date())

    def get_payment_status_display(self) -> str:
        return str(self.PaymentStatus(self.payment_status).label)


class InvoiceLine(models.Model):
    """Usage of one account and product in the period; on a manager's invoice, the lines of each
    roll-up managed account form its section."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    # The account's name when the invoice was issued: a later rename leaves the invoice as it was.
    account_name = models.CharField(max_length=255, blank=True)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=255)
    quantity = models.DecimalField(max_digits=24, decimal_places=6, default=Decimal("0"))
    amount = money_field()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["invoice", "position"]
        # An invoice's sections counted, totalled and paged by position from the index alone.
        indexes = [
            models.Index(
                fields=["invoice", "position"], include=["account", "amount"], name="invoice_line_position_cover"
            )
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class CreditNote(models.Model):
    """A correction of a finalized invoice, which itself never changes: an amount credited against
    it (by lines, or one amount), with a reason, numbered gap-free in the issuer's own credit-note
    sequence (billing.invoices.credit_notes). The credit notes of an invoice never add up to more
    than its total. A platform invoice's credit note credits the bill-to's balance (`ledger_entry`);
    a reseller invoice's is between the manager and its managed account, off the ledger. The
    idempotency key (the form's) makes a repeated submit find the note it issued."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    # The invoice's issuer, kept here for the numbering's unique constraints (empty: the platform).
    issuer = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=40)
    amount = money_field()
    currency = models.CharField(max_length=3, default="USD")
    reason = models.CharField(max_length=255)
    by_lines = models.BooleanField(default=False)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_note"
    )
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="credit_note_amount_positive", condition=Q(amount__gt=0)),
            models.UniqueConstraint(
                fields=["number"], condition=Q(issuer__isnull=True), name="credit_note_platform_number"
            ),
            models.UniqueConstraint(
                fields=["issuer", "number"], condition=Q(issuer__isnull=False), name="credit_note_issuer_number"
            ),
            models.UniqueConstraint(
                fields=["invoice", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="credit_note_key_per_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"Credit note {self.number} of {self.currency} {self.amount}"


class CreditNoteLine(models.Model):
    """The part of a credit note by lines that credits one line of the invoice."""

    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="credit_note_lines")
    description = models.CharField(max_length=255)
    amount = money_field()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["credit_note", "position"]
        constraints = [models.CheckConstraint(name="credit_note_line_amount_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class ResaleTerms(models.Model):
    """A manager's resale prices for its roll-up managed accounts: the platform's rated cost plus
    a markup. The markup in force when a month closes is the one its reseller invoices apply (and
    record on each invoice)."""

    manager = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="resale_terms")
    markup_percent = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("0.00"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "resale terms"
        constraints = [
            models.CheckConstraint(
                name="resale_markup_in_range", condition=Q(markup_percent__gte=0, markup_percent__lte=1000)
            )
        ]

    def __str__(self) -> str:
        return f"Markup {self.markup_percent}% of {self.manager_id}"


class ResaleRate(models.Model):
    """A manager's resale price of one product for its roll-up managed accounts, instead of the
    markup, from the first day of a UTC month on (billing.pricing holds the rule). No unit price:
    from that month the product is back at the markup. The rows of a product are its history."""

    manager = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="resale_rates")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    effective_from = models.DateField(help_text="First day of the UTC month it applies from.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["manager_id", "product_id", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["manager", "product", "effective_from"], name="resale_rate_one_per_product_month"
            ),
            models.CheckConstraint(name="resale_rate_from_first_day", condition=Q(effective_from__day=1)),
            models.CheckConstraint(
                name="resale_rate_not_negative", condition=Q(unit_price__isnull=True) | Q(unit_price__gte=0)
            ),
        ]

    def __str__(self) -> str:
        price = "markup" if self.unit_price is None else self.unit_price
        return f"Resale {self.product_id} {price} from {self.effective_from:%Y-%m} of {self.manager_id}"


class CloseRun(models.Model):
    """The monthly close of one period: how many billed parties it covers and how many are done
    (counted from its items, so a retried or repeated task never counts twice)."""

    period = models.DateField(unique=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "monthly close"

    def __str__(self) -> str:
        return f"Close of {self.period:%Y-%m}"


class CloseItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(CloseRun, on_delete=models.CASCADE, related_name="items")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "billed party of a close"
        verbose_name_plural = "billed parties of closes"
        constraints = [models.UniqueConstraint(fields=["run", "account"], name="close_item_once_per_run")]

    def __str__(self) -> str:
        return f"{self.run}: {self.get_status_display().lower()}"


# --- Payments through Stripe (billing.payments) -------------------------------------------------------


class StripeCustomer(models.Model):
    """The Stripe customer that holds an account's cards. Roll-up managed accounts have none."""

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="stripe_customer")
    stripe_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.stripe_id} for {self.account_id}"


class PaymentMethod(models.Model):
    """A card saved at Stripe for an account; the card number never reaches us, only its brand,
    last four digits and expiry. At most one default per account: auto-recharge charges it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payment_methods")
    stripe_id = models.CharField(max_length=255, unique=True)
    brand = models.CharField(max_length=32)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    is_default = models.BooleanField(default=False)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(is_default=True), name="payment_method_one_default_per_account"
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.brand.title()} •••• {self.last4}"

    @property
    def expiry(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}"


class Payment(models.Model):
    """One charge of a card: a top-up a person makes, or an auto-recharge. The row is written
    (pending, with its idempotency key) before Stripe is asked, and moves on by conditional update:
    pending -> succeeded | failed, and failed -> succeeded when Stripe reports the money taken after
    all. A succeeded payment's credit is one ledger entry keyed by its PaymentIntent."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        AUTO_RECHARGE = "auto_recharge", "Auto-recharge"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    amount = money_field()
    currency = models.CharField(max_length=3, default="USD")
    idempotency_key = models.CharField(max_length=200)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    payment_method = models.ForeignKey(
        PaymentMethod, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )
    card_label = models.CharField(max_length=64, blank=True, help_text="The card as it was when charged")
    failure_message = models.CharField(max_length=500, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="payment"
    )
    # The real person (a manager's owner when acting); empty for an auto-recharge (the platform).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acting_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="payment_idempotency_key_per_account"),
            models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [models.Index(fields=["account", "kind", "-created_at"], name="payment_account_kind_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.currency} {self.amount} on {self.account_id}: {self.status}"


class AutoRecharge(models.Model):
    """When a debit takes the balance from at or above `threshold` to below it, charge `amount`
    to the default card, at most settings.BILLING_AUTO_RECHARGE_MAX_PER_DAY times in 24 hours."""

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="auto_recharge")
    enabled = models.BooleanField(default=False)
    threshold = money_field(default=Decimal("10.00"))
    amount = money_field(default=Decimal("50.00"))
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="auto_recharge_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="auto_recharge_threshold_not_negative", condition=Q(threshold__gte=0)),
        ]

    def __str__(self) -> str:
        return f"Auto-recharge of {self.account_id}: {self.enabled}"
