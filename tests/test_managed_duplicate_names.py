"""Two managed accounts with one business name cannot be told apart in a list or a picker: a manager
creates a second one only after confirming, and sees the owner e-mail beside the name (issue 14,
item 10)."""

from django.urls import reverse

from accounts.models import Account
from tests.test_managed_accounts import create_url, db_state, valid_create_data


def test_a_second_account_with_the_same_name_needs_a_confirmation(world, persona):
    client = persona("owner")
    taken = world.managed.name
    before = db_state()

    refused = client.post(create_url(world.manager), valid_create_data(name=f"  {taken.upper()} "))

    assert refused.status_code == 422
    page = refused.content.decode()
    assert f"You already have a managed account named {taken}" in page
    assert world.managed.email in page  # told apart by the owner e-mail
    assert 'type="checkbox" name="confirm_same_name"' in page
    assert "Owner@Cobalt.example.com".lower() in page.lower()  # nothing typed is lost
    assert db_state() == before

    confirmed = client.post(create_url(world.manager), valid_create_data(name=taken, confirm_same_name="on"))

    assert confirmed.status_code == 302
    assert world.manager.managed_accounts.filter(name=taken).count() == 2


def test_a_new_name_needs_no_confirmation_and_shows_no_box(world, persona):
    client = persona("owner")

    form = client.get(create_url(world.manager)).content.decode()
    created = client.post(create_url(world.manager), valid_create_data(name="Brand New Name"))

    assert 'type="checkbox" name="confirm_same_name"' not in form
    assert created.status_code == 302


def test_a_cancelled_account_does_not_hold_its_name(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.CANCELLED)
    client = persona("owner")

    created = client.post(create_url(world.manager), valid_create_data(name=world.managed.name))

    assert created.status_code == 302


def test_another_managers_account_of_that_name_is_neither_refused_nor_revealed(world, persona):
    client = persona("owner")

    created = client.post(create_url(world.manager), valid_create_data(name=world.other_managed.name))

    assert created.status_code == 302
    assert created["Location"].startswith(reverse("managed_list", args=[world.manager.public_id]))
