from django.urls import path

from billing import credit_note_views, managed_views, payment_views, profile_views, resale_rate_views, views

urlpatterns = [
    path("a/<uuid:account_id>/usage/upload/", views.usage_upload, name="usage_upload"),
    path("a/<uuid:account_id>/rates/", views.rate_card_page, name="rate_card"),
    path("a/<uuid:account_id>/balance/", views.balance_page, name="balance"),
    path("a/<uuid:account_id>/invoices/", views.invoice_list, name="invoice_list"),
    path("a/<uuid:account_id>/invoices/<uuid:invoice_id>/", views.invoice_detail, name="invoice_detail"),
    path("a/<uuid:account_id>/invoices/<uuid:invoice_id>/pdf/", views.invoice_pdf_download, name="invoice_pdf"),
    path("a/<uuid:account_id>/resale/", views.resale_invoices, name="resale_invoices"),
    path("a/<uuid:account_id>/resale/prices/", resale_rate_views.resale_prices, name="resale_rates"),
    path("a/<uuid:account_id>/billing-profile/", profile_views.billing_profile, name="billing_profile"),
    path(
        "a/<uuid:account_id>/resale/invoices/<uuid:invoice_id>/",
        views.issued_invoice_detail,
        name="issued_invoice_detail",
    ),
    path(
        "a/<uuid:account_id>/resale/invoices/<uuid:invoice_id>/pdf/",
        views.issued_invoice_pdf,
        name="issued_invoice_pdf",
    ),
    # Credit notes (billing.credit_note_views): before the status action's <slug>, which "credit-notes" is not.
    path(
        "a/<uuid:account_id>/resale/invoices/<uuid:invoice_id>/credit-notes/new/",
        credit_note_views.issued_credit_note_new,
        name="issued_credit_note_new",
    ),
    path(
        "a/<uuid:account_id>/resale/invoices/<uuid:invoice_id>/credit-notes/<uuid:note_id>/pdf/",
        credit_note_views.issued_credit_note_pdf,
        name="issued_credit_note_pdf",
    ),
    path(
        "a/<uuid:account_id>/invoices/<uuid:invoice_id>/credit-notes/<uuid:note_id>/pdf/",
        credit_note_views.credit_note_pdf_download,
        name="credit_note_pdf",
    ),
    path(
        "a/<uuid:account_id>/resale/invoices/<uuid:invoice_id>/<slug:action>/",
        views.issued_invoice_status,
        name="issued_invoice_status",
    ),
    # Public: the signed, time-limited link the API's `action=link` hands out; the token is the credential.
    path("invoices/download/<str:token>/", views.invoice_download, name="invoice_download"),
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/transfer/",
        views.managed_transfer,
        name="managed_transfer",
    ),
    # A managed account's hub tabs that read billing (accounts.managed_hub).
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/invoices/",
        managed_views.managed_invoices,
        name="managed_invoices",
    ),
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/balance/",
        managed_views.managed_balance,
        name="managed_balance",
    ),
]

# Cards, top-ups, payment history and auto-recharge (billing.payment_views).
urlpatterns += [
    path("a/<uuid:account_id>/payment-methods/", payment_views.payment_methods, name="payment_methods"),
    path("a/<uuid:account_id>/payment-methods/add/", payment_views.payment_method_add, name="payment_method_add"),
    path("a/<uuid:account_id>/payment-methods/setup/", payment_views.payment_method_setup, name="payment_method_setup"),
    path(
        "a/<uuid:account_id>/payment-methods/<uuid:card_id>/default/",
        payment_views.payment_method_default,
        name="payment_method_default",
    ),
    path(
        "a/<uuid:account_id>/payment-methods/<uuid:card_id>/remove/",
        payment_views.payment_method_remove,
        name="payment_method_remove",
    ),
    path("a/<uuid:account_id>/payments/", payment_views.payment_history, name="payment_history"),
    path("a/<uuid:account_id>/payments/new/", payment_views.top_up, name="top_up"),
    path("a/<uuid:account_id>/payments/<uuid:payment_id>/", payment_views.payment_detail, name="payment_detail"),
    path("a/<uuid:account_id>/auto-recharge/", payment_views.auto_recharge, name="auto_recharge"),
    # Public: Stripe's signed webhook; the signature is the credential.
    path("stripe/webhook/", payment_views.stripe_webhook, name="stripe_webhook"),
]
