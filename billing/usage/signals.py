"""What usage ingestion announces, for the apps built on billing to answer without billing importing them."""

from django.dispatch import Signal

# Sent once the transaction that stored a batch's new records has committed, with `batch_id` and
# `account_ids` (the accounts the new records are of, sorted); controls checks their spend limits.
usage_stored = Signal()
