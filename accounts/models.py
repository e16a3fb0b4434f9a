from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import OuterRef, Q
from django.utils import timezone


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

    def rollups_of(self, manager: Account | int | OuterRef) -> AccountQuerySet:
        """The managed accounts whose usage `manager` pays (roll-up billing)."""
        return self.filter(manager=manager, billing_mode=Account.BillingMode.ROLLUP)

    def rolled_up(self) -> AccountQuerySet:
        """Every roll-up managed account, whichever its manager."""
        return self.filter(kind=Account.Kind.MANAGED, billing_mode=Account.BillingMode.ROLLUP)

    def paying_own_usage(self) -> AccountQuerySet:
        """Accounts that hold a balance of their own (the SQL form of `Account.has_own_balance`)."""
        return self.filter(Account.pays_own_usage())

    def open_before(self, instant: datetime) -> AccountQuerySet:
        """Accounts created before `instant` and not cancelled: those a month ending then bills."""
        return self.filter(created_at__lt=instant).exclude(status=Account.Status.CANCELLED)


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
    # Managed accounts only.
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices, blank=True)
    pricing_hidden = models.BooleanField(default=False)
    allow_custom_pricing = models.BooleanField(default=False)
    # Manager accounts only.
    managed_account_limit = models.PositiveIntegerField(null=True, blank=True)
    admins_can_log_in_as = models.BooleanField(
        default=False, help_text="Admins of this manager account may log in as its managed accounts."
    )
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
                name="account_limit_only_on_manager",
                condition=Q(kind="manager", managed_account_limit__isnull=False)
                | (~Q(kind="manager") & Q(managed_account_limit__isnull=True)),
            ),
        ]
        indexes = [
            models.Index(fields=["manager", "status", "-created_at"], name="account_manager_list"),
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
    def has_own_balance(self) -> bool:
        """Roll-up managed accounts are billed to their manager; every other account holds money."""
        return not (self.is_managed and self.billing_mode == self.BillingMode.ROLLUP)

    @staticmethod
    def pays_own_usage() -> Q:
        """`has_own_balance` as a condition, for filters and annotations."""
        return ~Q(kind=Account.Kind.MANAGED) | Q(billing_mode=Account.BillingMode.SEPARATE)


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
