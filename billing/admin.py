from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms.formsets import BaseFormSet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts import audit
from accounts.actor import Actor, request_user
from accounts.forms import apply_refusal
from accounts.models import Account
from billing.credit_note_views import credit_note_form
from billing.forms import AdjustBalanceForm
from billing.invoices import credit_notes
from billing.invoices import services as invoice_services
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import Balance, CreditNote, Invoice, LedgerEntry, Product, Rate, UsageBatch
from billing.money import format_money

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups
    from django.utils.datastructures import _ListOrTuple


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["sku", "name", "unit", "currency", "active"]
    search_fields = ["sku", "name"]


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin[Rate]):
    """Staff set list prices (no account) and negotiated or custom rates (an account)."""

    list_display = ["product", "account", "unit_price", "effective_from", "created_by"]
    list_filter = ["product"]
    search_fields = ["account__name", "product__sku"]
    raw_id_fields = ["account"]
    readonly_fields = ["created_by", "created_at"]
    list_select_related = ["product", "account", "created_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Rate | None = None) -> _ListOrTuple[str]:
        # A rate that may already have priced usage is never edited: add a new effective-dated one.
        if obj is not None:
            return ["product", "account", "unit_price", "effective_from", "created_by", "created_at"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Rate, form: forms.ModelForm[Rate], change: bool) -> None:
        obj.created_by = request_user(request)
        super().save_model(request, obj, form, change)
        if obj.account is not None:
            audit.record(
                account=obj.account,
                actor=Actor.platform_staff(request_user(request)),
                change_type=audit.ChangeType.RATE_CHANGED,
                resource=obj,
                changes=[
                    {"field": "product", "from": None, "to": obj.product.sku},
                    {"field": "unit_price", "from": None, "to": str(obj.unit_price)},
                    {"field": "effective_from", "from": None, "to": obj.effective_from.isoformat()},
                ],
            )

    def has_delete_permission(self, request: HttpRequest, obj: Rate | None = None) -> bool:
        return False


@admin.register(UsageBatch)
class UsageBatchAdmin(admin.ModelAdmin[UsageBatch]):
    list_display = ["public_id", "submitted_by_account", "source", "accepted", "duplicates", "created_at"]
    list_filter = ["source"]
    readonly_fields = [f.name for f in UsageBatch._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class BalanceAdminForm(forms.ModelForm[Balance]):
    class Meta:
        model = Balance
        fields = ["account", "credit_limit"]

    def clean_account(self) -> Account:
        account: Account = self.cleaned_data["account"]
        if not ledger_selectors.has_own_balance(account):
            raise forms.ValidationError(f"{account} is billed to its manager (roll-up) and has no balance of its own.")
        return account

    def clean_credit_limit(self) -> Decimal:
        limit: Decimal = self.cleaned_data["credit_limit"]
        if limit < 0:
            raise forms.ValidationError("A credit limit is zero or more.")
        return limit


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin[Balance]):
    """Staff set the credit limit here; the amount changes only through the ledger ("Adjust balance")."""

    form = BalanceAdminForm
    list_display = ["account", "amount", "credit_limit", "available", "currency", "updated_at", "adjust_link"]
    search_fields = ["account__name", "account__public_id"]
    list_select_related = ["account"]
    raw_id_fields = ["account"]

    def get_fields(self, request: HttpRequest, obj: Balance | None = None) -> _FieldGroups:
        if obj is None:
            return ["account", "credit_limit"]
        return ["account", "amount", "credit_limit", "available", "currency", "updated_at", "adjust_link"]

    def get_readonly_fields(self, request: HttpRequest, obj: Balance | None = None) -> _ListOrTuple[str]:
        if obj is None:
            return []
        return ["account", "amount", "available", "currency", "updated_at", "adjust_link"]

    @admin.display(description="Available credit")
    def available(self, obj: Balance) -> str:
        return format_money(obj.available_credit, obj.currency)

    @admin.display(description="Adjust")
    def adjust_link(self, obj: Balance) -> SafeString:
        url = reverse("admin:billing_balance_adjust", args=[obj.pk])
        return format_html('<a href="{}">Adjust balance…</a>', url)

    @transaction.atomic
    def save_model(self, request: HttpRequest, obj: Balance, form: forms.ModelForm[Balance], change: bool) -> None:
        # Never a plain save: it would write back the amount read before the form was submitted.
        locked = ledger.set_credit_limit(
            account=obj.account, limit=obj.credit_limit, actor=Actor.platform_staff(request_user(request))
        )
        obj.pk, obj.amount, obj.updated_at = locked.pk, locked.amount, locked.updated_at
        obj._state.adding = False

    # Django's log_change takes a plain message as well as the JSON list; the stubs allow only the list.
    def construct_change_message(  # type: ignore[override]
        self, request: HttpRequest, form: forms.Form, formsets: Iterable[BaseFormSet[Any]], add: bool = False
    ) -> str | list[dict[str, dict[str, list[str]]]]:
        if add or "credit_limit" not in form.changed_data:
            return super().construct_change_message(request, form, formsets, add)
        before, after = form.initial["credit_limit"], form.cleaned_data["credit_limit"]
        return f"Changed credit limit from {before} to {after}."

    def has_delete_permission(self, request: HttpRequest, obj: Balance | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        adjust = path(
            "<path:object_id>/adjust/", self.admin_site.admin_view(self.adjust_view), name="billing_balance_adjust"
        )
        return [adjust, *super().get_urls()]

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A staff adjustment through billing.ledger.adjust_balance: one ledger entry and its audit event."""
        balance = self.get_object(request, unquote(object_id))
        if balance is None:
            raise Http404("No such balance.")
        if not self.has_change_permission(request, balance):
            raise PermissionDenied
        form = AdjustBalanceForm(request.POST or None, initial={"key": uuid.uuid4()})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                posted = ledger.adjust_balance(
                    account=balance.account,
                    amount=data["amount"],
                    reason=data["reason"],
                    key=str(data["key"]),
                    actor=Actor.platform_staff(request_user(request)),
                )
            except ledger.LedgerError as error:
                apply_refusal(form=form, refusal=error)
            else:
                amount = format_money(posted.entry.amount, posted.entry.currency)
                done = "adjusted by" if posted.created else "was already adjusted by"
                self.message_user(request, f"{balance.account}'s balance {done} {amount}.")
                return redirect("admin:billing_balance_change", balance.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": balance,
            "title": f"Adjust the balance of {balance.account}",
            "balance": format_money(balance.amount, balance.currency),
            "available": format_money(balance.available_credit, balance.currency),
            "form": form,
        }
        status = 422 if form.errors else 200
        return TemplateResponse(request, "billing/balance_adjust_admin.html", context, status=status)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    """Entries never change: staff read them here and correct a balance with an adjustment."""

    list_display = ["created_at", "account", "kind", "amount", "currency", "description", "related_account"]
    list_filter = ["kind"]
    search_fields = ["account__name", "account__public_id", "public_id", "idempotency_key"]
    list_select_related = ["account", "related_account"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False


class InvoiceStatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(Invoice.Status.PAID, "Mark paid"), (Invoice.Status.VOID, "Void")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose paid or void."},
    )
    note = forms.CharField(
        max_length=255,
        required=False,
        help_text="How it was paid; or, to void it, the reason (required), kept on the invoice and in the audit log.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("status") == Invoice.Status.VOID and not (data.get("note") or "").strip():
            self.add_error("note", "Give the reason for voiding the invoice.")
        return data


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin[Invoice]):
    """Invoices are made by the monthly close and never edited: staff read them here, and move a
    finalized one to paid or void (billing.invoices.services, audited as the platform)."""

    list_display = ["number", "issuer", "bill_to", "period", "status", "total", "finalized_at"]
    list_filter = ["status", "period", ("issuer", admin.EmptyFieldListFilter)]
    search_fields = ["number", "bill_to__name", "bill_to__public_id", "public_id"]
    list_select_related = ["issuer", "bill_to"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    @admin.display(description="Change status")
    def status_link(self, obj: Invoice) -> str:
        if obj.status not in invoice_services.TRANSITIONS or not invoice_services.TRANSITIONS[obj.status]:
            return f"{obj.get_status_display()}: final"
        url = reverse("admin:billing_invoice_status", args=[obj.pk])
        return format_html('<a class="button" href="{}">Mark paid or void…</a>', url)

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None) -> _ListOrTuple[str]:
        return ["status_link", "credit_note_link", *[f.name for f in Invoice._meta.fields]]

    @admin.display(description="Credit notes")
    def credit_note_link(self, obj: Invoice) -> str:
        summary = credit_notes.credit_summary(obj, pricing=True)
        text = f"{len(summary.notes)} issued, {summary.credited} credited, {summary.left} left to credit"
        if obj.issuer_id is not None:
            return f"{text} (a reseller invoice: its manager credits it)"
        if not summary.creditable:
            return text
        url = reverse("admin:billing_invoice_credit_note", args=[obj.pk])
        return format_html('{}. <a class="button" href="{}">Issue credit note…</a>', text, url)

    def get_urls(self) -> list[URLPattern]:
        status = path(
            "<path:object_id>/status/", self.admin_site.admin_view(self.status_view), name="billing_invoice_status"
        )
        credit = path(
            "<path:object_id>/credit-note/",
            self.admin_site.admin_view(self.credit_note_view),
            name="billing_invoice_credit_note",
        )
        return [status, credit, *super().get_urls()]

    def credit_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Staff credit a platform invoice (billing.invoices.credit_notes): the form, a confirmation
        step showing what will be credited, then the note, its ledger credit and its audit event."""
        invoice = self.get_object(request, unquote(object_id))
        if invoice is None or invoice.issuer_id is not None:
            raise Http404("No such platform invoice.")  # a reseller invoice is its manager's to credit
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        form = credit_note_form(invoice, request.POST if request.method == "POST" else None)
        confirming = False
        if request.method == "POST" and form.is_valid():
            actor = Actor.platform_staff(request_user(request))
            data = form.cleaned_data
            try:
                if request.POST.get("confirm") != "1":
                    credit_notes.check_credit_note(invoice=invoice, reason=data["reason"], **form.credit())
                    confirming = True
                else:
                    note = credit_notes.issue_credit_note(
                        invoice=invoice, reason=data["reason"], key=str(data["key"]), actor=actor, **form.credit()
                    )
                    amount = format_money(note.amount, note.currency)
                    self.message_user(
                        request, f"Credit note {note.number} of {amount} issued against {invoice.number}."
                    )
                    return redirect("admin:billing_invoice_change", invoice.pk)
            except credit_notes.CreditNoteRefused as error:
                apply_refusal(form=form, refusal=error)
        asked = form.asked() if confirming else (None, [])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": invoice,
            "title": f"Issue a credit note against invoice {invoice.number}",
            "total": format_money(invoice.total, invoice.currency),
            "credit": credit_notes.credit_summary(invoice, pricing=True),
            "form": form,
            "confirming": confirming,
            "asked_amount": format_money(asked[0]) if asked[0] is not None else "",
            "asked_lines": [(label, format_money(amount)) for label, amount in asked[1]],
            "hidden": form.hidden_values() if confirming else [],
        }
        return TemplateResponse(request, "billing/credit_note_admin.html", context, status=422 if form.errors else 200)

    def status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self.get_object(request, unquote(object_id))
        if invoice is None:
            raise Http404("No such invoice.")
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        form = InvoiceStatusForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            actor = Actor.platform_staff(request_user(request))
            note = form.cleaned_data["note"]
            try:
                if form.cleaned_data["status"] == Invoice.Status.PAID:
                    invoice_services.mark_invoice_paid(invoice=invoice, note=note, actor=actor)
                else:
                    invoice_services.void_invoice(invoice=invoice, reason=note, actor=actor)
            except invoice_services.InvoiceStateError as error:
                apply_refusal(form=form, refusal=error)
            else:
                self.message_user(request, f"Invoice {invoice.number} is now {invoice.get_status_display().lower()}.")
                return redirect("admin:billing_invoice_change", invoice.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": invoice,
            "title": f"Mark invoice {invoice.number} paid or void",
            "total": format_money(invoice.total, invoice.currency),
            "form": form,
        }
        return TemplateResponse(
            request, "billing/invoice_status_admin.html", context, status=422 if form.errors else 200
        )


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin[CreditNote]):
    """Credit notes are issued from their invoice's page (InvoiceAdmin) and never edited."""

    list_display = ["number", "issuer", "invoice", "amount", "currency", "reason", "created_by", "created_at"]
    list_filter = [("issuer", admin.EmptyFieldListFilter)]
    search_fields = ["number", "invoice__number", "invoice__bill_to__name"]
    list_select_related = ["issuer", "invoice", "created_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CreditNote | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CreditNote | None = None) -> bool:
        return False
