"""Telnyx's names for what our usage reports call products and dimensions, in one place, so that a
client written for Telnyx's usage reports API (`product=messaging`, `dimensions=country_code`)
works unchanged beside our own names (`product=sms.outbound`, `dimensions=country`).

Products. Telnyx reports per product family ("Products Supported" in its usage reports guide:
`sip-trunking`, `messaging`, `call-control`, `fax-api`, `wireless`, ...). Each of our SKUs belongs
to exactly one family, by its service (the SKU's first part, `voice` of `voice.tollfree.inbound`),
so a SKU added later to a known service needs no change here. A family's report adds up the usage
of its SKUs. Voice is `call-control` (Telnyx's Voice API; our voice is not SIP trunking). Telnyx's
usage reports have no product for phone numbers (their rental is a monthly charge there), so our
number-months are the family `numbers`, the name Telnyx gives that product everywhere else.

Dimensions. Telnyx names the country `country_code` (voice) or `country_iso` (messaging); both
mean our records' `country`. `direction` and `destination_type` are the same word in both.
"""

from __future__ import annotations

from collections.abc import Iterable

# Our service (a SKU's first part) -> Telnyx's product family.
FAMILY_OF_SERVICE = {
    "voice": "call-control",
    "sms": "messaging",
    "mms": "messaging",
    "fax": "fax-api",
    "number": "numbers",
}
FAMILIES = tuple(dict.fromkeys(FAMILY_OF_SERVICE.values()))

# Telnyx's dimension name -> ours.
DIMENSION_ALIASES = {"country_code": "country", "country_iso": "country"}


def family_of(sku: str) -> str | None:
    """The Telnyx product family of one of our SKUs (None for a service no family has)."""
    return FAMILY_OF_SERVICE.get(sku.split(".", 1)[0])


def skus_of(family: str, skus: Iterable[str]) -> list[str]:
    """Those of `skus` that belong to `family`, sorted."""
    return sorted(sku for sku in skus if family_of(sku) == family)


def our_dimension(name: str) -> str:
    """Our dimension for a name a client gives (Telnyx's or ours; an unknown one as it is)."""
    return DIMENSION_ALIASES.get(name, name)


def names_of(dimension: str) -> list[str]:
    """Every name a client may give for one of our dimensions: ours first, then Telnyx's."""
    return [dimension, *(alias for alias, ours in DIMENSION_ALIASES.items() if ours == dimension)]
