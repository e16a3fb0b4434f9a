"""The demo's webhook endpoint (run by accounts' demo_data on every `./dev run`, idempotent): on the
demo manager, taking its managed accounts' events too, pointed at the receiver the portal serves
itself in development (`webhooks.views.dev_receiver`, at SITE_URL). The events that follow (service
blocks from the simulated usage, payments, invoices) are delivered to it by the worker and listed
in its delivery log; a second run finds the endpoint and adds nothing."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from accounts.actor import Actor
from accounts.demo import MANAGER_EMAIL, MANAGER_NAME
from accounts.models import Account, Membership, Role
from webhooks import services, views
from webhooks.events import EventType
from webhooks.models import WebhookEndpoint

DESCRIPTION = "Demo: the development receiver of this portal"


def demo_url() -> str:
    return settings.SITE_URL.rstrip("/") + reverse("webhooks_dev_receiver")


class Command(BaseCommand):
    help = "Add the demo manager's webhook endpoint, pointed at the development receiver (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not views.dev_receiver_enabled():
            self.stdout.write("No demo webhook endpoint: the development receiver serves only in development.")
            return
        membership = (
            Membership.objects.select_related("account", "user")
            .filter(user__email=MANAGER_EMAIL, role=Role.OWNER, account__kind=Account.Kind.MANAGER,
                    account__name=MANAGER_NAME)
            .first()
        )  # fmt: skip
        if membership is None:
            self.stdout.write("No demo manager: load the demo data first (manage.py demo_data).")
            return
        manager, url = membership.account, demo_url()
        if WebhookEndpoint.objects.filter(account=manager, url=url).exists():
            self.stdout.write(f"Demo webhook endpoint already there: {url}")
            return
        services.create_endpoint(
            account=manager,
            url=url,
            event_types=[str(t) for t in EventType],
            description=DESCRIPTION,
            include_managed_accounts=True,
            actor=Actor(user=membership.user),
        )
        self.stdout.write(f"Demo webhook endpoint added: {url} (every event, the managed accounts' too).")
