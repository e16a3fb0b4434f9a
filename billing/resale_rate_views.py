"""The manager's "Resale prices" page: per product its own cost (the platform's rate, for the
manager's eyes only), the price its roll-up managed accounts pay (a resale rate or the markup), set
or change a resale rate from the first of a month, remove one (confirmed), and the history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.models import Account
from accounts.permissions import RESELL
from billing import resale_rates
from billing.invoices.resale import markup_of
from billing.models import Product
from billing.resale_rates import ResaleRateRefused

HISTORY_PER_PAGE = 25


def _product_choices() -> list[tuple[str, str]]:
    return [(p.sku, f"{p.name} ({p.sku})") for p in Product.objects.filter(active=True).order_by("name", "sku")]


class _ProductMonthForm(forms.Form):
    product = forms.ChoiceField(label="Product", error_messages={"invalid_choice": "Choose one of the products."})
    effective_from = forms.DateField(
        label="From (the first day of a month)",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Give the first day of a month.", "invalid": "Give a date as YYYY-MM-DD."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = _product_choices()
        product = self.fields["product"]
        assert isinstance(product, forms.ChoiceField)
        product.choices = choices
        first = resale_rates.first_allowed_month()
        help_text = f"A resale rate applies from the first day of a month (UTC), {first:%Y-%m-%d} at the earliest."
        self.fields["effective_from"].help_text = help_text

    def product_object(self) -> Product:
        return Product.objects.get(sku=self.cleaned_data["product"])


class ResaleRateForm(_ProductMonthForm):
    unit_price = forms.DecimalField(
        label="Resale price per unit (USD)",
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=6,
        help_text="Up to 6 decimals, e.g. 0.0125. It wins over the markup for this product.",
        error_messages={
            "required": "Enter the price per unit.",
            "invalid": "Enter the price per unit as a number, e.g. 0.0125.",
            "min_value": "Enter a price per unit of 0 or more.",
            "max_decimal_places": "Use at most 6 decimals for a price per unit.",
            "max_digits": "Enter a price per unit of at most 99999999.999999.",
            "max_whole_digits": "Enter a price per unit of at most 99999999.999999.",
        },
    )
    field_order = ["product", "unit_price", "effective_from"]


class RemoveResaleRateForm(_ProductMonthForm):
    pass


@login_required
@require_http_methods(["GET", "POST"])
def resale_prices(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, RESELL)
    manager = access.account
    rate_form = ResaleRateForm()
    remove_form: RemoveResaleRateForm | None = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "set":
            rate_form = ResaleRateForm(request.POST)
            if _set(request, manager, rate_form):
                return redirect("resale_rates", manager.public_id)
        elif action == "remove":
            remove_form = RemoveResaleRateForm(request.POST)
            if request.POST.get("confirm") == "1" and _remove(request, manager, remove_form):
                return redirect("resale_rates", manager.public_id)
        else:
            messages.error(request, "Choose to set or to remove a resale rate.")
            return redirect("resale_rates", manager.public_id)
    elif "remove" in request.GET:
        remove_form = RemoveResaleRateForm(
            {"product": request.GET["remove"], "effective_from": request.GET.get("from")}
        )
        remove_form.is_valid()
    failed = bool(rate_form.errors or (remove_form is not None and remove_form.errors))
    return render(
        request,
        "billing/resale_rates.html",
        _context(request, access, rate_form, remove_form),
        status=422 if failed else 200,
    )


def _set(request: HttpRequest, manager: Account, form: ResaleRateForm) -> bool:
    if not form.is_valid():
        return False
    try:
        rate = resale_rates.set_resale_rate(
            manager=manager,
            product=form.product_object(),
            unit_price=form.cleaned_data["unit_price"],
            effective_from=form.cleaned_data["effective_from"],
            actor=Actor.from_request(request),
        )
    except ResaleRateRefused as refusal:
        apply_refusal(form=form, refusal=refusal)
        return False
    messages.success(
        request,
        f"{rate.product.name}: USD {rate.unit_price} per {rate.product.unit} from {rate.effective_from:%Y-%m-%d}.",
    )
    return True


def _remove(request: HttpRequest, manager: Account, form: RemoveResaleRateForm) -> bool:
    if not form.is_valid():
        return False
    product, month = form.product_object(), form.cleaned_data["effective_from"]
    try:
        resale_rates.remove_resale_rate(
            manager=manager, product=product, effective_from=month, actor=Actor.from_request(request)
        )
    except ResaleRateRefused as refusal:
        apply_refusal(form=form, refusal=refusal)
        return False
    messages.success(request, f"{product.name}: from {month:%Y-%m-%d} at the markup, unless a later rate is set.")
    return True


def _context(
    request: HttpRequest, access: AccountAccess, rate_form: ResaleRateForm, remove_form: RemoveResaleRateForm | None
) -> dict[str, Any]:
    manager = access.account
    removing = None
    if remove_form is not None and remove_form.is_bound and "product" in remove_form.cleaned_data:
        removing = (remove_form.product_object(), remove_form.cleaned_data.get("effective_from"))
    history = Paginator(resale_rates.history_of(manager), HISTORY_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "access": access,
        "account": manager,
        "markup": markup_of(manager),
        "lines": resale_rates.resale_price_lines(manager),
        "rate_form": rate_form,
        "remove_form": remove_form,
        "removing": removing,
        "history": history,
        "this_month": resale_rates.this_month(),
        "first_month": resale_rates.first_allowed_month(),
        "markup_url": reverse("resale_invoices", args=[manager.public_id]),
    }
