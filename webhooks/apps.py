from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Webhook events are derived from the audit log, the one record of every change that
        # matters: accounts announces the events it writes instead of importing webhooks.
        from accounts.audit import events_recorded
        from webhooks import receivers

        events_recorded.connect(receivers.deliveries_for_events, dispatch_uid="webhooks.deliveries_for_events")
