from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse

class DefaultAccountAdapter:
    def __init__(self, request: HttpRequest | None = None) -> None: ...
    def pre_login(
        self,
        request: HttpRequest,
        user: AbstractBaseUser,
        *,
        email_verification: str,
        signal_kwargs: dict[str, Any] | None,
        email: str | None,
        signup: bool,
        redirect_url: str | None,
    ) -> HttpResponse | None: ...
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None: ...
    def get_reset_password_from_key_url(self, key: str) -> str: ...
    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str: ...
