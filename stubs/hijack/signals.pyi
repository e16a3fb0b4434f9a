from contextlib import AbstractContextManager

from django.dispatch import Signal

hijack_started: Signal
hijack_ended: Signal

def no_update_last_login() -> AbstractContextManager[None]: ...
