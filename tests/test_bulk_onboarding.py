"""Bulk onboarding as a manager's owner meets it: upload a CSV of managed accounts, read the report of
every row, confirm, and follow the progress while the Celery task (eager here) creates them."""

import html
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts import audit
from accounts.models import Account, AuditEvent, Invitation, OnboardingUpload

GOOD = [
    "Cobalt Clinics,owner@cobalt.example.com,separate,yes,no",
    "Delta Dental,owner@delta.example.com,rollup,,",
    "Echo Energy,owner@echo.example.com,ROLLUP,true,1",
    "Fjord Freight,owner@fjord.example.com,separate,0,false",
    "Garnet Gyms,owner@garnet.example.com,rollup,no,yes",
]
HEADER = "name,owner_email,billing_mode,pricing_hidden,allow_custom_pricing"


def csv_file(*lines: str, name: str = "accounts.csv", bom: bool = False) -> SimpleUploadedFile:
    text = "\n".join(lines) + "\n"
    return SimpleUploadedFile(name, (b"\xef\xbb\xbf" if bom else b"") + text.encode(), content_type="text/csv")


def upload(client, manager: Account, file: SimpleUploadedFile):
    return client.post(reverse("managed_onboarding", args=[manager.public_id]), {"file": file})


def report_rows(response) -> dict[int, list[str]]:
    return {row["row"]: row["problems"] for row in response.context["upload"].rows}


def confirm(client, manager: Account, the_upload: OnboardingUpload, capture):
    url = reverse("managed_onboarding_start", args=[manager.public_id, the_upload.public_id])
    with capture(execute=True):
        return client.post(url)


def managed_names(manager: Account) -> set[str]:
    return set(manager.managed_accounts.values_list("name", flat=True))


def test_the_managed_list_links_to_the_csv_upload(world, owner_client):
    response = owner_client.get(reverse("managed_list", args=[world.manager.public_id]))
    assert reverse("managed_onboarding", args=[world.manager.public_id]) in response.content.decode()
    assert "Add many from a CSV" in response.content.decode()


def test_the_report_shows_each_rows_problems_and_creates_nothing(world, owner_client):
    before = (Account.objects.count(), AuditEvent.objects.count(), Invitation.objects.count())
    response = upload(
        owner_client,
        world.manager,
        csv_file(
            HEADER,
            GOOD[0],
            "Bad Mail,not-an-address,rollup,,",
            "Odd Mode,owner@odd.example.com,monthly,,",
            "cobalt clinics,other@cobalt.example.com,rollup,,",
            "alpine voice,owner@alpine2.example.com,rollup,,",
            "Vague Flag,owner@vague.example.com,rollup,maybe,",
            "Short Row,owner@short.example.com",
            bom=True,
        ),
    )
    assert response.status_code == 302
    report = owner_client.get(response["Location"])
    assert report.status_code == 200
    problems = report_rows(report)
    assert problems[1] == []
    assert problems[2] == ["'not-an-address' is not a valid e-mail address."]
    assert problems[3] == ["Unknown billing mode 'monthly': use rollup or separate."]
    assert problems[4] == ["The name is also in row 1."]
    assert problems[5] == ["You already have a managed account with this name."]  # world.managed, any case
    assert "pricing_hidden is 'maybe'" in problems[6][0]
    assert problems[7] == ["It has 2 fields; the header row has 5."]
    page = report.content.decode()
    assert "1 can be created, 6 cannot" in page
    assert "Unknown billing mode" in page
    assert "Create 1 managed account" in page
    assert (Account.objects.count(), AuditEvent.objects.count(), Invitation.objects.count()) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"%PDF-1.7 ...", "it is a PDF document"),
        ("name,owner_email,billing_mode\nCaf\xe9,a@b.example.com,rollup\n".encode("latin-1"), "it is not UTF-8 text"),
        (b"name;owner_email;billing_mode\nA;a@b.example.com;rollup\n", "separated by semicolons"),
        (b"name,owner_email,plan\nA,a@b.example.com,rollup\n", "no 'billing_mode' column"),
        (b"name,owner_email,billing_mode\n", "a header row but no accounts"),
    ],
)
def test_a_file_that_cannot_be_used_says_what_is_wrong(world, owner_client, content, message):
    file = SimpleUploadedFile("accounts.csv", content, content_type="text/csv")
    response = owner_client.post(reverse("managed_onboarding", args=[world.manager.public_id]), {"file": file})
    assert response.status_code == 422
    assert message in html.unescape(response.content.decode())
    assert not OnboardingUpload.objects.exists()


def test_too_many_rows_and_too_large_files_are_refused(world, owner_client):
    rows = [f"Customer {i},c{i}@bulk.example.com,rollup" for i in range(3001)]
    response = upload(owner_client, world.manager, csv_file("name,owner_email,billing_mode", *rows))
    assert response.status_code == 422
    assert "at most 3,000 accounts" in response.content.decode()
    big = csv_file("name,owner_email,billing_mode", "A,a@b.example.com,rollup", "#" * (1024 * 1024))
    response = upload(owner_client, world.manager, big)
    assert response.status_code == 422
    assert "the limit is 1 MB" in response.content.decode()


def test_confirm_creates_exactly_the_valid_rows_through_the_service(
    world, owner_client, django_capture_on_commit_callbacks
):
    existing_owner = world.users["billing"].email  # an address in use: an invitation, as single creation does
    lines = [HEADER, *GOOD[:2], f"Hotel Haven,{existing_owner},rollup,,", "Bad Mail,nope,rollup,,"]
    response = upload(owner_client, world.manager, csv_file(*lines))
    the_upload = OnboardingUpload.objects.get()
    before = managed_names(world.manager)

    response = confirm(owner_client, world.manager, the_upload, django_capture_on_commit_callbacks)

    progress_url = reverse("managed_onboarding_progress", args=[world.manager.public_id, the_upload.public_id])
    assert response["Location"] == progress_url
    assert managed_names(world.manager) - before == {"Cobalt Clinics", "Delta Dental", "Hotel Haven"}
    cobalt = Account.objects.get(name="Cobalt Clinics")
    assert (cobalt.email, cobalt.billing_mode, cobalt.pricing_hidden, cobalt.allow_custom_pricing) == (
        "owner@cobalt.example.com",
        "separate",
        True,
        False,
    )
    assert cobalt.memberships.get().user.email == "owner@cobalt.example.com"
    hotel = Account.objects.get(name="Hotel Haven")
    assert not hotel.memberships.exists()
    assert Invitation.objects.filter(account=hotel, email=existing_owner).exists()
    created_events = AuditEvent.objects.filter(change_type=audit.ChangeType.MANAGED_ACCOUNT_CREATED)
    assert set(created_events.values_list("related_account__name", flat=True)) == {
        "Cobalt Clinics",
        "Delta Dental",
        "Hotel Haven",
    }
    assert set(created_events.values_list("user", flat=True)) == {world.users["owner"].pk}
    the_upload.refresh_from_db()
    assert (the_upload.status, the_upload.done, the_upload.failed) == ("done", 3, 0)

    status = owner_client.get(
        reverse("managed_onboarding_status", args=[world.manager.public_id, the_upload.public_id])
    )
    assert status.json() == {"status": "done", "done": 3, "failed": 0, "total": 3}
    page = owner_client.get(progress_url).content.decode()
    assert "<script src=" in page and "js/onboarding.js" in page
    assert '<span data-count="done">3</span> created' in page


def test_a_second_confirm_does_nothing(world, owner_client, django_capture_on_commit_callbacks):
    upload(owner_client, world.manager, csv_file(HEADER, *GOOD[:2]))
    the_upload = OnboardingUpload.objects.get()
    confirm(owner_client, world.manager, the_upload, django_capture_on_commit_callbacks)
    count, events = Account.objects.count(), AuditEvent.objects.count()

    response = confirm(owner_client, world.manager, the_upload, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert (Account.objects.count(), AuditEvent.objects.count()) == (count, events)
    page = owner_client.get(response["Location"]).content.decode()
    assert "already confirmed" in page
    the_upload.refresh_from_db()
    assert (the_upload.done, the_upload.failed) == (2, 0)


def test_the_limit_holds_nothing_is_created_when_the_valid_rows_exceed_it(
    world, owner_client, django_capture_on_commit_callbacks
):
    in_use = world.manager.managed_accounts.count()
    Account.objects.filter(pk=world.manager.pk).update(managed_account_limit=in_use + 2)
    upload(owner_client, world.manager, csv_file(HEADER, *GOOD))
    the_upload = OnboardingUpload.objects.get()
    report = owner_client.get(
        reverse("managed_onboarding_report", args=[world.manager.public_id, the_upload.public_id])
    )
    page = report.content.decode()
    assert "leaves room for 2 more; this file has 5 valid accounts. Nothing can be created" in page
    assert "Create 5 managed accounts" not in page
    before = managed_names(world.manager)

    confirm(owner_client, world.manager, the_upload, django_capture_on_commit_callbacks)

    assert managed_names(world.manager) == before
    the_upload.refresh_from_db()
    assert the_upload.status == OnboardingUpload.Status.CHECKED


def test_an_upload_older_than_a_day_cannot_be_confirmed(world, owner_client, django_capture_on_commit_callbacks):
    upload(owner_client, world.manager, csv_file(HEADER, GOOD[0]))
    the_upload = OnboardingUpload.objects.get()
    OnboardingUpload.objects.filter(pk=the_upload.pk).update(
        created_at=the_upload.created_at - timedelta(days=1, minutes=1)
    )

    response = confirm(owner_client, world.manager, the_upload, django_capture_on_commit_callbacks)

    assert "more than a day old" in owner_client.get(response["Location"]).content.decode()
    assert not Account.objects.filter(name="Cobalt Clinics").exists()


def test_another_tenant_cannot_see_or_confirm_an_upload(world, persona, django_capture_on_commit_callbacks):
    upload(persona("owner"), world.manager, csv_file(HEADER, GOOD[0]))
    the_upload = OnboardingUpload.objects.get()
    stranger = persona("other_tenant")
    # Through the stranger's own account's URLs: the upload is not theirs.
    for name in ("managed_onboarding_report", "managed_onboarding_progress", "managed_onboarding_status"):
        assert (
            stranger.get(reverse(name, args=[world.other_manager.public_id, the_upload.public_id])).status_code == 404
        )
        assert stranger.get(reverse(name, args=[world.manager.public_id, the_upload.public_id])).status_code == 404
    response = confirm(stranger, world.other_manager, the_upload, django_capture_on_commit_callbacks)
    assert response.status_code == 404
    assert not Account.objects.filter(name="Cobalt Clinics").exists()
    the_upload.refresh_from_db()
    assert the_upload.status == OnboardingUpload.Status.CHECKED


def test_the_progress_endpoint_counts_rows_that_fail_at_creation(
    world, owner_client, django_capture_on_commit_callbacks
):
    """A row valid at the report that the service refuses when its turn comes (here: the limit,
    lowered after the confirmation was checked) is counted as failed, with the service's reason."""
    upload(owner_client, world.manager, csv_file(HEADER, *GOOD[:3]))
    the_upload = OnboardingUpload.objects.get()
    status_url = reverse("managed_onboarding_status", args=[world.manager.public_id, the_upload.public_id])
    assert owner_client.get(status_url).json() == {"status": "checked", "done": 0, "failed": 0, "total": 3}
    url = reverse("managed_onboarding_start", args=[world.manager.public_id, the_upload.public_id])
    in_use = world.manager.managed_accounts.count()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        owner_client.post(url)
    assert owner_client.get(status_url).json() == {"status": "running", "done": 0, "failed": 0, "total": 3}
    Account.objects.filter(pk=world.manager.pk).update(managed_account_limit=in_use + 1)
    for callback in callbacks:
        callback()

    assert owner_client.get(status_url).json() == {"status": "done", "done": 1, "failed": 2, "total": 3}
    assert managed_names(world.manager) >= {"Cobalt Clinics"}
    assert not Account.objects.filter(name__in=["Delta Dental", "Echo Energy"]).exists()
    page = owner_client.get(
        reverse("managed_onboarding_progress", args=[world.manager.public_id, the_upload.public_id])
    )
    assert "reached your limit" in page.content.decode()
