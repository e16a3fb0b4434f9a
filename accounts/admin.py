from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import audit, services
from accounts.actor import Actor, request_user
from accounts.models import Account, AuditEvent, Invitation, Membership, User

if TYPE_CHECKING:
    from django.contrib.admin.options import InlineModelAdmin, _FieldGroups
    from django.utils.datastructures import _ListOrTuple


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class ManagerAccountCreationForm(forms.ModelForm[Account]):
    owner_email = forms.EmailField(help_text="A new user is created for this address if none exists.")
    owner_password = forms.CharField(required=False, widget=forms.PasswordInput, strip=False)

    class Meta:
        model = Account
        fields = ["name", "managed_account_limit"]

    def clean_owner_email(self) -> str:
        email: str = self.cleaned_data["owner_email"]
        problem = services.manager_owner_problem(email)
        if problem:
            raise forms.ValidationError(problem)
        return email

    def clean_owner_password(self) -> str:
        password: str = self.cleaned_data["owner_password"]
        if password:
            validate_password(password, User(email=self.cleaned_data.get("owner_email", "")))
        return password


class MembershipInline(admin.TabularInline[Membership, Account]):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ["name", "email", "kind", "status", "manager", "managed_account_limit", "created_at"]
    list_filter = ["kind", "status", "billing_mode"]
    search_fields = ["name", "email", "public_id"]
    list_select_related = ["manager"]
    inlines = [MembershipInline]
    editable_after_creation = ["name", "managed_account_limit", "admins_can_log_in_as"]

    def get_form(
        self, request: HttpRequest, obj: Account | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Account]]:
        if obj is None:
            kwargs["form"] = ManagerAccountCreationForm
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None and obj.is_manager:
            form.base_fields["managed_account_limit"].required = True
        return form

    def get_fields(self, request: HttpRequest, obj: Account | None = None) -> _FieldGroups:
        if obj is None:
            return ["name", "owner_email", "owner_password", "managed_account_limit"]
        return [
            "public_id", "kind", "manager", "status", "email", *self.editable_after_creation,
            "billing_mode", "pricing_hidden", "allow_custom_pricing", "created_at", "updated_at",
        ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> list[str]:
        if obj is None:
            return []
        fields = self.get_fields(request, obj)
        readonly = [f for f in fields if isinstance(f, str) and f not in self.editable_after_creation]
        if not obj.is_manager:
            readonly += ["managed_account_limit", "admins_can_log_in_as"]
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Account | None) -> _ListOrTuple[type[InlineModelAdmin[Any, Any]]]:
        return self.inlines if obj is not None else []

    @transaction.atomic
    def save_model(self, request: HttpRequest, obj: Account, form: forms.ModelForm[Account], change: bool) -> None:
        actor = Actor.platform_staff(request_user(request))
        if not change:
            created = services.create_manager_account(
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                owner_password=form.cleaned_data["owner_password"] or None,
                limit=form.cleaned_data["managed_account_limit"],
                actor=actor,
            )
            obj.pk, obj.public_id = created.pk, created.public_id
            return
        stored = Account.objects.get(pk=obj.pk)
        limit = obj.managed_account_limit
        if obj.is_manager and limit is not None and stored.managed_account_limit != limit:
            services.set_managed_account_limit(manager=obj, limit=limit, actor=actor)
        before = {f: getattr(stored, f) for f in ("name", "admins_can_log_in_as")}
        changes = audit.field_changes(obj, before, before.keys())
        obj.save()
        if changes:
            audit.record(
                account=obj, actor=actor, change_type=audit.ChangeType.ACCOUNT_UPDATED, resource=obj, changes=changes
            )

    actions = ["disable_accounts", "enable_accounts"]

    @admin.action(description="Disable selected manager or standard accounts (and block their managed accounts)")
    def disable_accounts(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._change_status(request, queryset, "disable")

    @admin.action(description="Enable selected manager or standard accounts")
    def enable_accounts(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._change_status(request, queryset, "enable")

    def _change_status(self, request: HttpRequest, queryset: QuerySet[Account], action: str) -> None:
        actor = Actor.platform_staff(request_user(request))
        for account in queryset.order_by("pk"):
            try:
                services.change_account_status(account=account, action=action, actor=actor)
            except services.ServiceError as error:
                self.message_user(request, error.message, level=messages.WARNING)
            else:
                self.message_user(request, f"{account.name} is now {action}d.", level=messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False  # accounts are disabled or cancelled, never deleted


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = [
        "created_at",
        "account",
        "change_type",
        "resource_type",
        "resource_id",
        "user_email",
        "change_made_by",
    ]
    list_filter = ["change_type", "change_made_by"]
    search_fields = ["resource_id", "user_email", "account__name"]
    list_select_related = ["account"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    list_display = ["email", "account", "role", "status", "created_at", "expires_at"]
    list_filter = ["status", "role"]
    readonly_fields = ["token"]
