from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.actor import Actor
from accounts.services import ServiceError, create_manager_account


class Command(BaseCommand):
    help = "Create a manager account (platform staff only): a business name and its owner's e-mail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", default=None, help="Omit to have the owner reset a password.")
        parser.add_argument("--limit", type=int, default=None, help="Managed-account limit (default 3,000).")

    def handle(
        self, *args: Any, name: str, owner_email: str, owner_password: str | None, limit: int | None, **options: Any
    ) -> None:
        if not name.strip() or len(name) > 255:
            raise CommandError("--name must be 1 to 255 characters.")
        if limit is not None and limit < 0:
            raise CommandError("--limit must be zero or more.")
        try:
            account = create_manager_account(
                name=name,
                owner_email=owner_email,
                owner_password=owner_password,
                limit=limit,
                actor=Actor.platform_staff(),
            )
        except ServiceError as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"Created manager account {account.name} ({account.public_id})."))
