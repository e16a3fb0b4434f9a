from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Payments builds on the ledger; the ledger announces its debits instead of importing payments.
        from billing.ledger.signals import debits_posted
        from billing.payments.receivers import queue_auto_recharges

        debits_posted.connect(queue_auto_recharges, dispatch_uid="billing.payments.auto_recharge")
