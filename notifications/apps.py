from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Notifications builds on accounts and billing: the ledger announces debits and credits, the
        # audit log the events it wrote; neither imports notifications.
        from accounts.audit import events_recorded
        from billing.ledger.signals import balances_debited, credit_changed
        from notifications import receivers

        balances_debited.connect(receivers.balance_after_debits, dispatch_uid="notifications.balance_after_debits")
        credit_changed.connect(receivers.balance_after_credit, dispatch_uid="notifications.balance_after_credit")
        events_recorded.connect(receivers.alerts_for_events, dispatch_uid="notifications.alerts_for_events")
