"""Platform staff land on the staff site, and the staff site names things as people know them
(issue 14, item 7)."""

import re

from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.mfa_support import force_login_with_mfa


def test_staff_without_an_account_land_on_the_staff_site(db):
    staff = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_a_customer_without_an_account_is_told_so_not_sent_to_the_staff_site(db):
    client = Client()
    client.force_login(UserFactory(email="nobody@example.com"))

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert reverse("admin:index") not in response.content.decode()


def test_the_staff_site_index_uses_plural_names_people_read(db):
    staff = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()
    force_login_with_mfa(client, staff)

    page = client.get(reverse("admin:index")).content.decode()

    for wrong in ("Ledger entrys", "Usage batchs", "Django site admin"):
        assert wrong not in page
    for right in ("Ledger entries", "Usage batches", "Mission Control staff"):
        assert right in page
    sections = [title.strip().lower() for title in re.findall(r"<caption>\s*<a[^>]*>([^<]+)</a>", page)]
    assert len(sections) == len(set(sections)), sections  # no two sections share a title
