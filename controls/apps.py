from django.apps import AppConfig


class ControlsConfig(AppConfig):
    name = "controls"
    verbose_name = "Controls"

    def ready(self) -> None:
        # Controls builds on billing; billing announces stored usage and ledger movements instead of
        # importing controls.
        from billing.ledger.signals import balances_debited, credit_changed
        from billing.usage.signals import usage_stored
        from controls import receivers

        usage_stored.connect(receivers.check_after_batch, dispatch_uid="controls.check_after_batch")
        balances_debited.connect(receivers.check_after_debits, dispatch_uid="controls.check_after_debits")
        credit_changed.connect(receivers.check_after_credit, dispatch_uid="controls.check_after_credit")
