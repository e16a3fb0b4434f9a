from contextlib import AbstractContextManager
from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.views import View
from django.views.generic.detail import SingleObjectMixin

def get_used_backend(request: HttpRequest) -> BaseBackend: ...
def keep_session_age(session: SessionBase) -> AbstractContextManager[None]: ...

class SuccessUrlMixin:
    redirect_field_name: str
    success_url: str
    request: HttpRequest
    def get_success_url(self) -> str: ...
    def get_redirect_url(self) -> str: ...

class LockUserTableMixin:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase: ...

class AcquireUserView(
    LoginRequiredMixin,
    LockUserTableMixin,
    UserPassesTestMixin,
    SuccessUrlMixin,
    SingleObjectMixin[AbstractBaseUser],
    View,
):
    def test_func(self) -> bool: ...
    def get_object(self, queryset: QuerySet[AbstractBaseUser] | None = None) -> AbstractBaseUser: ...
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase: ...
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseRedirect: ...
