from django.urls import reverse


def test_each_persona_reaches_its_own_home(world, persona):
    for name in ("owner", "admin", "billing", "reporting", "managed_owner", "standard_owner", "other_tenant"):
        response = persona(name).get(reverse("home"))
        assert response.status_code == 302, name


def test_manager_acting_lands_in_the_managed_account(world, persona):
    response = persona("manager_acting").get(reverse("home"))
    assert response["Location"] == reverse("dashboard", args=[world.managed.public_id])
