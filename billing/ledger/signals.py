"""What the ledger announces, for the packages built on it to answer without the ledger importing them."""

from django.dispatch import Signal

# Sent inside the transaction of every debit that lowered a balance, with `account_id`, `entry_id` (the
# last debit posted) and the balance `before` and `after`; payments answers with auto-recharge.
debit_posted = Signal()
