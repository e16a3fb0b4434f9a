from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from allauth.account.signals import user_logged_in

        from accounts.services import record_sign_in

        # allauth's signal fires on real sign-ins only, not when hijack switches the session's user.
        def on_sign_in(sender, request, user, **kwargs):
            record_sign_in(user=user, ip_address=request.META.get("REMOTE_ADDR"))

        user_logged_in.connect(on_sign_in, weak=False, dispatch_uid="accounts.record_sign_in")
