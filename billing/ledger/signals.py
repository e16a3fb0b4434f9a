"""What the ledger announces, for the packages built on it to answer without the ledger importing them."""

from dataclasses import dataclass
from decimal import Decimal

from django.dispatch import Signal


@dataclass(frozen=True)
class Debit:
    entry_id: int
    before: Decimal
    after: Decimal


# Sent once per posting (one entry, or a bulk of usage charges), inside its transaction, with `debits`:
# {account_id: Debit (the last debit entry's id, the balance before and after)} of every balance it
# lowered; payments answers with auto-recharge, set-based (one query for a bulk of 3,000).
debits_posted = Signal()

# Sent once per posting (one entry, or a bulk of usage charges), inside its transaction, with `after`:
# {account_id: balance after} of every balance the posting lowered; controls answers set-based
# (credit exhaustion), so a bulk of 3,000 charges costs it the same queries as one.
balances_debited = Signal()

# Sent inside the transaction of every credit entry (a top-up, a transfer in, a positive adjustment)
# and of every credit-limit change, with `account_id` and the `available` credit after it; controls
# answers by lifting (or setting) the account's credit block at once.
credit_changed = Signal()
