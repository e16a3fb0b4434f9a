from celery import shared_task
from django.core.mail import send_mail
from django.core.management import call_command
from django.template.loader import render_to_string

from accounts.models import Invitation
from accounts.selectors import invitation_url


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_pk: int) -> None:
    invitation = Invitation.objects.select_related("account", "invited_by").filter(pk=invitation_pk).first()
    if invitation is None or invitation.status != Invitation.Status.PENDING:
        return
    context = {"invitation": invitation, "url": invitation_url(invitation)}
    send_mail(
        subject=f"You are invited to {invitation.account.name} on Mission Control",
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


@shared_task
def clear_expired_sessions() -> None:
    call_command("clearsessions")
