"""What the ledger announces, for the packages built on it to answer without the ledger importing them."""

from django.dispatch import Signal

# Sent inside the transaction of every debit that lowered a balance, with `account_id`, `entry_id` (the
# last debit posted) and the balance `before` and `after`; payments answers with auto-recharge.
debit_posted = Signal()

# Sent once per posting (one entry, or a bulk of usage charges), inside its transaction, with `after`:
# {account_id: balance after} of every balance the posting lowered; controls answers set-based
# (credit exhaustion), so a bulk of 3,000 charges costs it the same queries as one.
balances_debited = Signal()

# Sent inside the transaction of every credit entry (a top-up, a transfer in, a positive adjustment)
# and of every credit-limit change, with `account_id` and the `available` credit after it; controls
# answers by lifting (or setting) the account's credit block at once.
credit_changed = Signal()
