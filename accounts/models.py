from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, OuterRef, Q
from django.utils import timezone


def month_of(moment: date | None = None) -> date:
    """The first day of the UTC calendar month of `moment` (a date or datetime), now by default:
    the billing month. (billing.periods has the same calendar; accounts cannot import billing.)"""
    day = moment if moment is not None else timezone.now()
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date()
    return day.replace(day=1)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person. Signs in with e-mail and password; belongs to accounts through memberships."""

    # The stubs cannot express a subclass removing an inherited field (sign-in is by e-mail).
    username = None  # type: ignore[assignment]
    email = models.EmailField("e-mail address", unique=True)
    # The id the v2 API gives (audit events' `user_id`), a UUID as Telnyx's; the pk stays internal.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # AbstractUser's stubs fix `objects` to the username-based UserManager; ours creates by e-mail.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email


class AccountQuerySet(models.QuerySet["Account"]):
    """The recurring rules about which accounts, named once (pages, tasks and the close use them)."""

    def rollups_of(self, manager: Account | int | OuterRef, month: date | None = None) -> AccountQuerySet:
        """The managed accounts whose usage of `month` (this month by default) `manager` pays
        (roll-up billing in that month, `Account.billing_mode_in`)."""
        return self.filter(Account.billing_mode_is(Account.BillingMode.ROLLUP, month), manager=manager)

    def rolled_up(self, month: date | None = None) -> AccountQuerySet:
        """Every managed account billed by roll-up in `month` (this month by default), whichever its manager."""
        return self.filter(Account.billing_mode_is(Account.BillingMode.ROLLUP, month))

    def paying_own_usage(self, month: date | None = None) -> AccountQuerySet:
        """Accounts that hold a balance of their own in `month` (this month by default): the SQL
        form of `Account.has_own_balance_in`."""
        return self.filter(Account.pays_own_usage(month))

    def billing_mode_changes_due(self, month: date | None = None) -> AccountQuerySet:
        """Managed accounts with a scheduled billing-mode change due by `month` (this month by
        default) whose stored `billing_mode` is not flipped yet (`Account.billing_mode_in`)."""
        due = Q(billing_mode_from__lte=month_of(month)) & ~Q(billing_mode=F("billing_mode_next"))
        return self.filter(due, kind=Account.Kind.MANAGED)

    def open_before(self, instant: datetime) -> AccountQuerySet:
        """Accounts created before `instant` and not cancelled: those a month ending then bills."""
        return self.filter(created_at__lt=instant).exclude(status=Account.Status.CANCELLED)


class ServiceBlock(models.TextChoices):
    """Why an account gets no new service (`Account.service_block`). Usage that happened is still
    recorded and billed; only new traffic stops. The first two are stored on the account by
    `controls` (its spend limits and credit rule); the others follow from other accounts' states."""

    SPEND_LIMIT = "spend_limit", "Spend limit reached"
    CREDIT_EXHAUSTED = "credit_exhausted", "Credit exhausted"
    MANAGER_BLOCKED = "manager_blocked", "Manager blocked"
    ACCOUNT_DISABLED = "account_disabled", "Account disabled"


STORED_SERVICE_BLOCKS = [(c.value, c.label) for c in (ServiceBlock.SPEND_LIMIT, ServiceBlock.CREDIT_EXHAUSTED)]


class Account(models.Model):
    """An organisation: holds a balance, payment methods, usage and invoices."""

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard"
        MANAGER = "manager", "Manager"
        MANAGED = "managed", "Managed"

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"
        CANCELLED = "cancelled", "Cancelled"

    class BillingMode(models.TextChoices):
        ROLLUP = "rollup", "Roll-up"
        SEPARATE = "separate", "Separate"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField("business name", max_length=255)
    email = models.EmailField("contact e-mail", help_text="The owner's e-mail at creation.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STANDARD)
    manager = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="managed_accounts",
        limit_choices_to={"kind": Kind.MANAGER},
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    # Managed accounts only. `billing_mode` is the mode in force this month; a change scheduled for
    # a later month is `billing_mode_next` from `billing_mode_from` on (see `billing_mode_in`).
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices, blank=True)
    billing_mode_next = models.CharField(max_length=10, choices=BillingMode.choices, blank=True)
    billing_mode_from = models.DateField(null=True, blank=True)
    pricing_hidden = models.BooleanField(default=False)
    allow_custom_pricing = models.BooleanField(default=False)
    # Manager accounts only.
    managed_account_limit = models.PositiveIntegerField(null=True, blank=True)
    admins_can_log_in_as = models.BooleanField(
        default=False, help_text="Admins of this manager account may log in as its managed accounts."
    )
    # Written only by controls.services: a spend limit or exhausted credit stops new service, until
    # `service_blocked_until` when the block ends with its period (a spend limit's day or month).
    service_blocked_reason = models.CharField(max_length=20, choices=STORED_SERVICE_BLOCKS, blank=True)
    service_blocked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="account_managed_has_manager",
                condition=(Q(kind="managed", manager__isnull=False) | (~Q(kind="managed") & Q(manager__isnull=True))),
            ),
            models.CheckConstraint(
                name="account_billing_mode_only_on_managed",
                condition=(Q(kind="managed") & ~Q(billing_mode="")) | (~Q(kind="managed") & Q(billing_mode="")),
            ),
            models.CheckConstraint(
                name="account_billing_mode_change_whole",
                condition=Q(billing_mode_next="", billing_mode_from__isnull=True)
                | (Q(kind="managed", billing_mode_from__isnull=False) & ~Q(billing_mode_next="")),
            ),
            models.CheckConstraint(
                name="account_limit_only_on_manager",
                condition=Q(kind="manager", managed_account_limit__isnull=False)
                | (~Q(kind="manager") & Q(managed_account_limit__isnull=True)),
            ),
        ]
        indexes = [
            models.Index(fields=["manager", "status", "-created_at"], name="account_manager_list"),
            # The managed-accounts list unfiltered, newest first: its page read in order, not sorted.
            models.Index(fields=["manager", "-created_at"], name="account_manager_newest"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_structural_change()
        super().save(*args, **kwargs)

    def _refuse_structural_change(self) -> None:
        """An account's kind and manager are fixed at creation: a standard account never becomes a
        manager or moves under one, and a managed account never changes manager."""
        if self._state.adding or self.pk is None:
            return
        stored = Account.objects.filter(pk=self.pk).values("kind", "manager_id").first()
        if stored and (stored["kind"] != self.kind or stored["manager_id"] != self.manager_id):
            raise ValidationError("An account's kind and manager cannot change after creation.")

    @property
    def is_manager(self) -> bool:
        return self.kind == self.Kind.MANAGER

    @property
    def is_managed(self) -> bool:
        return self.kind == self.Kind.MANAGED

    @property
    def managed_by(self) -> Account:
        """A managed account's manager (the database requires one); an error on any other account."""
        if self.manager is None:
            raise ValueError(f"Account {self.pk} is not a managed account; it has no manager.")
        return self.manager

    @property
    def is_enabled(self) -> bool:
        return self.status == self.Status.ENABLED

    @property
    def blocked_reason(self) -> str | None:
        """Why this account cannot be used now (sign-in, pages, API keys, new usage), or None when it
        can: it is not enabled, or it is a managed account whose manager is not. The one rule every
        one of those asks; a disabled manager leaves its managed accounts' own statuses alone.
        Load `manager` with the account (select_related) where it is asked per request."""
        if not self.is_enabled:
            return f"{self.name} is {self.get_status_display().lower()}"
        if self.is_managed and self.manager is not None and not self.manager.is_enabled:
            return (
                f"{self.name} is unavailable while its manager, {self.manager.name}, "
                f"is {self.manager.get_status_display().lower()}"
            )
        return None

    @property
    def is_usable(self) -> bool:
        return self.blocked_reason is None

    @property
    def own_service_block(self) -> str:
        """The block controls stored on this account, "" once none is (or its period has ended)."""
        until = self.service_blocked_until
        if not self.service_blocked_reason or (until is not None and until <= timezone.now()):
            return ""
        return self.service_blocked_reason

    @property
    def service_block(self) -> str:
        """Why this account gets no new service now (a `ServiceBlock` value), "" when it does: it is
        not usable (`blocked_reason`), its own spend limit or credit stopped it, or it is a roll-up
        account whose manager's did. Usage already reported is still accepted and billed (ingestion
        asks `blocked_reason` only). Load `manager` with the account where this is asked per row."""
        if self.blocked_reason is not None:
            return ServiceBlock.ACCOUNT_DISABLED if not self.is_enabled else ServiceBlock.MANAGER_BLOCKED
        if self.own_service_block:
            return self.own_service_block
        if not self.has_own_balance and self.manager is not None and self.manager.own_service_block:
            return ServiceBlock.MANAGER_BLOCKED
        return ""

    @property
    def in_service(self) -> bool:
        """Whether new traffic may start (the simulator generates usage only for these)."""
        return not self.service_block

    @property
    def service_block_display(self) -> str:
        return ServiceBlock(self.service_block).label if self.service_block else ""

    def billing_mode_in(self, month: date | None = None) -> str:
        """The billing mode in force in `month` (the UTC month of a date; this month by default):
        the one rule every reader of a month's mode asks (the close, the usage charges, the ledger's
        `billed_party`, reports), with `billing_mode_is` as its SQL form.

        How a change is stored. A change always takes effect at the start of a UTC month, never in
        the middle of one: scheduling it (accounts.services.schedule_billing_mode_change) sets
        `billing_mode_next` (the other mode) and `billing_mode_from` (the first day of next month),
        leaving `billing_mode`, the mode in force now, as it is. From the start of that month the
        rule answers `billing_mode_next` for it and every later month, and the mode before it,
        which is the other of the two, for every earlier month, whether or not `billing_mode` has
        been flipped yet. A beat task flips `billing_mode` early on the 1st
        (accounts.services.apply_billing_mode_changes) and keeps `billing_mode_next` and
        `billing_mode_from`, which then record the last change, so the close of the month before,
        which runs later on the 1st (or is re-run by the command), still bills that month by the
        old mode. Cancelling a pending change clears both fields. Without a change on record the
        mode is `billing_mode` in every month.

        One change is on record at a time: a new one may be scheduled only from the month after
        the last took effect (a mode holds at least one whole month), so the two months that may
        still be billed, this one and the last, are always answered right. Months before the
        change on record are closed: their invoices are final and their usage refused."""
        month = month_of(month)
        if self.billing_mode_from is None or not self.billing_mode_next:
            return self.billing_mode
        if month >= self.billing_mode_from:
            return self.billing_mode_next
        return OTHER_BILLING_MODE[self.billing_mode_next]

    @staticmethod
    def billing_mode_is(mode: str, month: date | None = None) -> Q:
        """`billing_mode_in(month) == mode` as a condition, for filters and annotations."""
        month = month_of(month)
        unchanged = Q(billing_mode_from__isnull=True, billing_mode=mode)
        since = Q(billing_mode_from__lte=month, billing_mode_next=mode)
        before = Q(billing_mode_from__gt=month, billing_mode_next=OTHER_BILLING_MODE[mode])
        return Q(kind=Account.Kind.MANAGED) & (unchanged | since | before)

    def has_own_balance_in(self, month: date | None = None) -> bool:
        """Whether the account pays its own usage of `month`: a managed account billed by roll-up in
        it is billed to its manager; every other account holds money."""
        return not (self.is_managed and self.billing_mode_in(month) == self.BillingMode.ROLLUP)

    @property
    def has_own_balance(self) -> bool:
        """`has_own_balance_in` this month."""
        return self.has_own_balance_in()

    @staticmethod
    def pays_own_usage(month: date | None = None) -> Q:
        """`has_own_balance_in(month)` as a condition, for filters and annotations."""
        return ~Q(kind=Account.Kind.MANAGED) | Account.billing_mode_is(Account.BillingMode.SEPARATE, month)

    @property
    def billing_mode_change_pending(self) -> bool:
        """A change is scheduled and its month has not begun."""
        return self.billing_mode_from is not None and self.billing_mode_from > month_of()

    @property
    def billing_mode_until(self) -> date | None:
        """The last day of the current mode when a change is pending, else None."""
        if not self.billing_mode_change_pending or self.billing_mode_from is None:
            return None
        return date.fromordinal(self.billing_mode_from.toordinal() - 1)


# A change of billing mode is always to the other mode (Account.billing_mode_in).
OTHER_BILLING_MODE: dict[str, str] = {
    Account.BillingMode.ROLLUP: Account.BillingMode.SEPARATE,
    Account.BillingMode.SEPARATE: Account.BillingMode.ROLLUP,
}


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    BILLING = "billing", "Billing"
    REPORTING = "reporting", "Reporting"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="membership_user_account_unique")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} as {self.role}"


class Invitation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    token = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "email"],
                condition=Q(status="pending"),
                name="invitation_one_pending_per_email",
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.account}"

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.PENDING and self.expires_at > timezone.now()


class AuditEvent(models.Model):
    """One state change that matters to a customer, naming the real person who made it."""

    class MadeBy(models.TextChoices):
        ACCOUNT_OWNER = "account_owner", "Account owner"
        ORGANIZATION_MEMBER = "organization_member", "Organization member"
        ACCOUNT_MANAGER = "account_manager", "Account manager"
        PLATFORM = "platform", "Platform"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The account whose audit log shows the event, and another account it concerns (a manager's
    # managed account, or the manager acting in it); both logs list it.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="audit_events")
    related_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="related_audit_events"
    )
    change_type = models.CharField(max_length=64, db_index=True)
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=64)
    # What people call the resource (an e-mail, a key's or account's name, an invoice number), kept
    # as it was when the change was made, so the log still names a member removed or a card deleted.
    resource_label = models.CharField(max_length=255, blank=True, default="")
    changes = models.JSONField(default=list, blank=True)
    change_made_by = models.CharField(max_length=24, choices=MadeBy.choices)
    # The real person: the manager's user while acting as a managed account, never the owner
    # being impersonated. `acting_as` records whom they were acting as.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_email = models.EmailField(blank=True)
    acting_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="audit_account_created"),
            models.Index(fields=["related_account", "-created_at"], name="audit_related_created"),
            # The part of a manager's log read from its managed accounts' events: what its people did
            # there (accounts.audit.latest_events_for_account), newest first.
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(change_made_by="account_manager"),
                name="audit_by_manager_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.change_type} on {self.resource_type} {self.resource_id}"


class ApiKey(models.Model):
    """A secret that lets a program act for one account through the v2 API. Only a SHA-256 hash and
    a short prefix are stored; the key itself is shown once, when it is created."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class OnboardingUpload(models.Model):
    """A CSV of managed accounts a manager uploaded (accounts.onboarding): its checked rows, kept
    between the validation report and the confirmation, then the progress of their creation."""

    class Status(models.TextChoices):
        CHECKED = "checked", "Checked, not started"
        RUNNING = "running", "Creating the accounts"
        DONE = "done", "Done"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    manager = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="onboarding_uploads")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(max_length=255, blank=True)
    # One entry per data row: {"row", "name", "owner_email", "billing_mode", "pricing_hidden",
    # "allow_custom_pricing", "problems": [..]}; the rows without problems are the ones to create.
    rows = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CHECKED)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_ip = models.GenericIPAddressField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list)  # [{"row": n, "name": ..., "message": ...}]
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.filename or 'upload'} for {self.manager_id} ({self.status})"

    @property
    def valid_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if not row["problems"]]

    @property
    def total(self) -> int:
        return len(self.valid_rows)


class BillingProfile(models.Model):
    """Who an account is on an invoice: its legal name, postal address, tax id and where invoices
    are e-mailed; for a manager, which issues reseller invoices, also its payment terms. Optional:
    without one an invoice names the account and e-mails its owner. Invoices keep a copy of it as
    it was when they were finalized (billing.models.Invoice.bill_to_details / issuer_details)."""

    MAX_RECIPIENTS = 5
    DEFAULT_PAYMENT_TERMS_DAYS = 14

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="billing_profile")
    legal_name = models.CharField(max_length=255, blank=True)
    address_line1 = models.CharField("address", max_length=255, blank=True)
    address_line2 = models.CharField("address (line 2)", max_length=255, blank=True)
    city = models.CharField(max_length=128, blank=True)
    postal_code = models.CharField(max_length=32, blank=True)
    region = models.CharField("region or state", max_length=128, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 two-letter code, e.g. DE")
    tax_id = models.CharField("tax id", max_length=64, blank=True)
    invoice_emails = models.JSONField(default=list, blank=True, help_text="Where invoices are e-mailed")
    payment_terms_days = models.PositiveSmallIntegerField(
        default=DEFAULT_PAYMENT_TERMS_DAYS, help_text="On the invoices this account issues: days until due"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="billing_profile_terms_in_range", condition=Q(payment_terms_days__lte=365))
        ]

    def __str__(self) -> str:
        return f"Billing profile of {self.account_id}"
