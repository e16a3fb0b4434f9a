import factory
from allauth.account.models import EmailAddress

from accounts.models import Account, Membership, Role, User

PASSWORD = "correct-horse-battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def email_address(self, create, extracted, **kwargs):
        if create:
            self.save()
            EmailAddress.objects.create(user=self, email=self.email, primary=True, verified=True)


class AccountFactory(factory.django.DjangoModelFactory):
    """A standard account by default; traits give the other kinds and statuses."""

    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    email = factory.Sequence(lambda n: f"account{n}@example.com")
    kind = Account.Kind.STANDARD

    class Params:
        manager_kind = factory.Trait(kind=Account.Kind.MANAGER, managed_account_limit=3000)
        managed_kind = factory.Trait(
            kind=Account.Kind.MANAGED,
            manager=factory.SubFactory("tests.factories.AccountFactory", manager_kind=True),
            billing_mode=Account.BillingMode.ROLLUP,
        )
        disabled = factory.Trait(status=Account.Status.DISABLED)
        cancelled = factory.Trait(status=Account.Status.CANCELLED)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Role.OWNER


def account_with_owner(**kwargs) -> tuple[Account, User]:
    """An account and its owner user, whose e-mail is the account's contact e-mail."""
    account = AccountFactory(**kwargs)
    owner = UserFactory(email=account.email)
    MembershipFactory(user=owner, account=account, role=Role.OWNER)
    return account, owner
