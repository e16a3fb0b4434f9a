from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    # "a/<uuid:account_id>/" (name "dashboard"), the overview, is reporting.dashboard_views.overview.
    path("a/<uuid:account_id>/settings/", views.account_settings, name="account_settings"),
    path("a/<uuid:account_id>/members/", views.members, name="members"),
    path("a/<uuid:account_id>/members/invite/", views.member_invite, name="member_invite"),
    path("a/<uuid:account_id>/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("a/<uuid:account_id>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "a/<uuid:account_id>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("a/<uuid:account_id>/audit/", views.audit_log, name="audit_log"),
    path("a/<uuid:account_id>/api-keys/", views.api_keys, name="api_keys"),
    path("a/<uuid:account_id>/api-keys/new/", views.api_key_create, name="api_key_create"),
    path("a/<uuid:account_id>/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("a/<uuid:account_id>/managed/", views.managed_list, name="managed_list"),
    path("a/<uuid:account_id>/managed/new/", views.managed_create, name="managed_create"),
    path("a/<uuid:account_id>/managed/onboarding/", views.managed_onboarding, name="managed_onboarding"),
    *[
        path(
            f"a/<uuid:account_id>/managed/onboarding/<uuid:upload_id>/{step}",
            getattr(views, f"managed_onboarding_{name}"),
            name=f"managed_onboarding_{name}",
        )
        for step, name in (("", "report"), ("start/", "start"), ("progress/", "progress"), ("status/", "status"))
    ],
    path("a/<uuid:account_id>/managed/<uuid:managed_id>/", views.managed_detail, name="managed_detail"),
    # The hub's other tabs; Usage is reporting's, Invoices and Balance billing's, Spend limits controls'.
    path("a/<uuid:account_id>/managed/<uuid:managed_id>/api-keys/", views.managed_api_keys, name="managed_api_keys"),
    path("a/<uuid:account_id>/managed/<uuid:managed_id>/members/", views.managed_members, name="managed_members"),
    path("a/<uuid:account_id>/managed/<uuid:managed_id>/audit/", views.managed_audit, name="managed_audit"),
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/settings/",
        views.managed_settings,
        name="managed_settings",
    ),
    *[
        path(
            f"a/<uuid:account_id>/managed/<uuid:managed_id>/{action}/",
            views.managed_status,
            {"action": action},
            name=f"managed_{action}",
        )
        for action in ("disable", "enable", "cancel")
    ],
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/api-keys/new/",
        views.managed_api_key_create,
        name="managed_api_key_create",
    ),
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/api-keys/<int:key_id>/revoke/",
        views.managed_api_key_revoke,
        name="managed_api_key_revoke",
    ),
    path(
        "a/<uuid:account_id>/managed/<uuid:managed_id>/log-in-as/",
        views.LogInAsView.as_view(),
        name="managed_log_in_as",
    ),
    path("acting/return/", views.acting_return, name="acting_return"),
    path("invitations/<str:token>/", views.accept_invitation, name="accept_invitation"),
]
