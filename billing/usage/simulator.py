"""Realistic usage for demos and benchmarks, submitted through the one ingestion service.

Each account gets a profile drawn from a seeded random generator: a size (lognormal, so a few
large accounts and a long tail), a kind of business (contact centre, messaging, mixed, clinic)
that sets its product mix, a home country, its phone numbers. Each UTC day's traffic is drawn
from a generator seeded by (seed, account, day) alone, so a day looks the same whatever range
it is generated in, and its idempotency keys are the same: re-running adds nothing twice, and a
later run only adds what happened since. Nothing is generated after `end` (at most now), nor
before the account's `created_at`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate, groupby

from django.db.models import Max
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account
from billing.ledger.selectors import billed_party
from billing.models import Invoice
from billing.periods import month_start, next_month
from billing.usage.services import MAX_BATCH, ingest_usage

# Products drawn per event, and their mix per kind of business (relative weights).
EVENT_PRODUCTS = (
    "voice.outbound",
    "voice.inbound",
    "voice.tollfree.inbound",
    "sms.outbound",
    "sms.inbound",
    "mms.outbound",
    "mms.inbound",
    "fax.outbound",
)
BUSINESS_MIX = {
    "contact centre": (45, 30, 15, 6, 3, 0, 0, 1),
    "messaging": (4, 2, 0, 60, 26, 6, 2, 0),
    "mixed": (25, 20, 4, 30, 15, 3, 1, 2),
    "clinic": (30, 30, 0, 20, 10, 0, 0, 10),
}
BUSINESS_WEIGHTS = (25, 30, 35, 10)
# Home countries (relative frequency) and their UTC offset in hours, for the daily curve.
HOME_COUNTRIES = {"US": (50, -6), "GB": (12, 0), "CA": (8, -5), "DE": (8, 1), "AU": (6, 10), "FR": (6, 1)}
HOME_COUNTRIES |= {"NL": (4, 1), "IE": (3, 0), "SE": (3, 1)}
ABROAD = ("US", "GB", "MX", "IN", "PH", "DE", "FR", "BR", "JP", "CA")
# E.164 numbering: country code, leading digits of a mobile number, digits after them.
NUMBERING = {
    "GB": ("44", ("7",), 9),
    "DE": ("49", ("151", "160", "170", "176"), 8),
    "FR": ("33", ("6", "7"), 8),
    "NL": ("31", ("6",), 8),
    "IE": ("353", ("83", "85", "86", "87"), 7),
    "SE": ("46", ("70", "72", "73", "76"), 7),
    "AU": ("61", ("4",), 8),
    "MX": ("52", ("55", "33", "81"), 8),
    "IN": ("91", ("7", "8", "9"), 9),
    "PH": ("63", ("9",), 9),
    "BR": ("55", ("119", "219"), 8),
    "JP": ("81", ("90", "80"), 8),
}
TOLL_FREE_PREFIXES = ("800", "833", "844", "855", "866", "877", "888")
# Share of a day's traffic per local hour (business hours peak, quiet nights).
HOURLY = (1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 19, 18, 16, 17, 18, 17, 15, 12, 9, 7, 5, 4, 3, 2)
WEEKDAY = (1.12, 1.15, 1.15, 1.12, 1.05, 0.5, 0.35)  # Monday first; mean about 0.92
SIZE_SIGMA = 1.3  # lognormal spread of account sizes: the largest of 25 is about 15x the median


@dataclass(frozen=True)
class Profile:
    weight: float  # mean 1 over many accounts
    business: str
    home: str
    mix: tuple[float, ...]  # cumulative weights over EVENT_PRODUCTS
    hours: tuple[float, ...]  # cumulative weights over the UTC hours of a day
    local_numbers: tuple[str, ...]
    toll_free_numbers: tuple[str, ...]


@dataclass(frozen=True)
class SimulationResult:
    accounts: int
    skipped: int
    accepted: int
    duplicates: int
    seconds: float


Progress = Callable[[int, int, Account, int], None]  # (accounts done, accounts total, account, rows generated)


def simulate_usage(
    *,
    accounts: Iterable[Account],
    start: datetime,
    end: datetime,
    records_per_day: float = 40,
    seed: int = 0,
    actor: Actor | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Generate and ingest usage for the `accounts` in service (`Account.service_block`) from `start` to
    `end` (UTC).

    A managed account's usage is submitted by its manager naming it in the `account` field;
    other accounts submit their own. Batches hold at most MAX_BATCH records."""
    began = time.monotonic()
    end = min(end, timezone.now())
    actor = actor or Actor.platform_staff()
    accounts = list(accounts)
    enabled = sorted((a for a in accounts if a.in_service), key=lambda a: (_submitter(a).pk, a.pk))
    accepted = duplicates = done = generated = 0
    open_from = _first_open_instants(enabled)
    for submitter, group in groupby(enabled, key=_submitter):
        batch: list[dict[str, str]] = []
        for account in group:
            since = max(start, open_from.get(billed_party(account).pk, start))
            for row in account_usage(account, start=since, end=end, records_per_day=records_per_day, seed=seed):
                if account != submitter:
                    row["account"] = str(account.public_id)
                batch.append(row)
                generated += 1
                if len(batch) == MAX_BATCH:
                    accepted, duplicates = _submit(submitter, batch, actor, accepted, duplicates)
                    batch = []
            done += 1
            if progress:
                progress(done, len(enabled), account, generated)
        if batch:
            accepted, duplicates = _submit(submitter, batch, actor, accepted, duplicates)
    return SimulationResult(len(enabled), len(accounts) - len(enabled), accepted, duplicates, time.monotonic() - began)


def _first_open_instants(accounts: list[Account]) -> dict[int, datetime]:
    """Per payer, the start of the month after its last invoiced one: usage of an invoiced month is
    refused, so the simulator leaves closed months alone (a second `./dev run` after a close)."""
    payers = {billed_party(account).pk for account in accounts}
    last_closed = (
        Invoice.objects.closed_for(payers=payers)
        .values("bill_to_id")
        .annotate(last=Max("period"))
        .values_list("bill_to_id", "last")
    )
    return {payer: month_start(next_month(last)) for payer, last in last_closed}


def _submitter(account: Account) -> Account:
    return account.managed_by if account.is_managed else account


def _submit(
    submitter: Account, rows: list[dict[str, str]], actor: Actor, accepted: int, duplicates: int
) -> tuple[int, int]:
    result = ingest_usage(submitter=submitter, rows=rows, source="simulator", actor=actor)
    return accepted + result.accepted, duplicates + result.duplicates


# --- One account's traffic ----------------------------------------------------------------------------


def account_usage(
    account: Account, *, start: datetime, end: datetime, records_per_day: float, seed: int
) -> Iterator[dict[str, str]]:
    """Usage rows for one account from `start` to `end`, day by day; never before the account was
    created (`created_at`): there is no usage before an account exists."""
    profile = account_profile(account, seed=seed)
    start, end = max(start, account.created_at).astimezone(UTC), end.astimezone(UTC)
    day = start.date()
    while day <= end.date():
        events = _numbers_rows(profile, day, seed) if day.day == 1 else []
        events += _day_rows(account, profile, day, records_per_day, seed)
        yield from (row for moment, row in events if start <= moment <= end)
        day += timedelta(days=1)


def account_profile(account: Account, *, seed: int) -> Profile:
    rng = random.Random(f"{seed}:{account.public_id}:profile")
    weight = min(max(rng.lognormvariate(-(SIZE_SIGMA**2) / 2, SIZE_SIGMA), 0.02), 40.0)
    business = rng.choices(tuple(BUSINESS_MIX), weights=BUSINESS_WEIGHTS)[0]
    home = rng.choices(tuple(HOME_COUNTRIES), weights=[w for w, _ in HOME_COUNTRIES.values()])[0]
    toll_free = home in ("US", "CA") and (business == "contact centre" or rng.random() < 0.1)
    mix = [w * rng.uniform(0.7, 1.3) for w in BUSINESS_MIX[business]]
    if not toll_free:
        mix[EVENT_PRODUCTS.index("voice.tollfree.inbound")] = 0
    local = max(1, round(weight * 6 * rng.uniform(0.5, 1.5)))
    return Profile(
        weight=weight,
        business=business,
        home=home,
        mix=tuple(accumulate(mix)),
        hours=tuple(accumulate(HOURLY[(h + HOME_COUNTRIES[home][1]) % 24] for h in range(24))),
        local_numbers=tuple(_phone(rng, home) for _ in range(min(local, 200))),
        toll_free_numbers=tuple(_toll_free(rng) for _ in range(1 + int(weight)) if toll_free),
    )


def _numbers_rows(profile: Profile, day: date, seed: int) -> list[tuple[datetime, dict[str, str]]]:
    """Phone numbers are billed per number-month, on the 1st, at midnight UTC."""
    moment = datetime(day.year, day.month, 1, tzinfo=UTC)
    rows = [("number.local", len(profile.local_numbers), profile.home)]
    if profile.toll_free_numbers:
        rows.append(("number.tollfree", len(profile.toll_free_numbers), "US"))
    return [
        (
            moment,
            {
                "product": sku,
                "quantity": str(count),
                "started_at": moment.isoformat(),
                "idempotency_key": f"sim{seed}-{day:%Y%m}-{sku}",
                "country": country,
            },
        )
        for sku, count, country in rows
    ]


def _day_rows(
    account: Account, profile: Profile, day: date, records_per_day: float, seed: int
) -> list[tuple[datetime, dict[str, str]]]:
    rng = random.Random(f"{seed}:{account.public_id}:{day.isoformat()}")
    mean = records_per_day * profile.weight * WEEKDAY[day.weekday()] * rng.lognormvariate(0, 0.2)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hours = range(24)
    seconds = sorted(
        rng.choices(hours, cum_weights=profile.hours)[0] * 3600 + rng.randrange(3600)
        for _ in range(_poisson(rng, mean))
    )
    events = []
    for n, second in enumerate(seconds):
        moment = midnight + timedelta(seconds=second)
        events.append((moment, _event(rng, profile, moment, f"sim{seed}-{day:%Y%m%d}-{n:06d}")))
    return events


def _event(rng: random.Random, profile: Profile, moment: datetime, key: str) -> dict[str, str]:
    sku = rng.choices(EVENT_PRODUCTS, cum_weights=profile.mix)[0]
    direction = "inbound" if sku.endswith(".inbound") else "outbound"
    if sku == "voice.tollfree.inbound":
        country, destination = "US", rng.choice(profile.toll_free_numbers)
    elif direction == "inbound":
        country, destination = profile.home, rng.choice(profile.local_numbers)
    else:
        country = profile.home if rng.random() < 0.85 else rng.choice(ABROAD)
        destination = _phone(rng, country)
    return {
        "product": sku,
        "quantity": _quantity(rng, sku),
        "started_at": moment.isoformat(),
        "idempotency_key": key,
        "direction": direction,
        "country": country,
        "destination": destination,
    }


def _quantity(rng: random.Random, sku: str) -> str:
    if sku.startswith("voice."):
        median = 3.5 if "tollfree" in sku else 1.8
        minutes = min(rng.lognormvariate(math.log(median), 0.9), 240.0)
        return f"{max(math.ceil(minutes * 10), 1) / 10:.1f}"  # billed in 6-second steps: 2.5 minutes
    if sku == "sms.outbound":
        return str(rng.choices((1, 2, 3, 4), weights=(80, 15, 4, 1))[0])  # segments
    if sku == "fax.outbound":
        return str(rng.choices(range(1, 9), weights=(30, 25, 15, 10, 8, 5, 4, 3))[0])  # pages
    return "1"


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _phone(rng: random.Random, country: str) -> str:
    if country in ("US", "CA"):
        return f"+1{rng.randint(2, 9)}{rng.randrange(100):02d}{rng.randint(2, 9)}{rng.randrange(100):02d}" + (
            f"{rng.randrange(10000):04d}"
        )
    code, leads, digits = NUMBERING[country]
    return f"+{code}{rng.choice(leads)}{rng.randrange(10**digits):0{digits}d}"


def _toll_free(rng: random.Random) -> str:
    return f"+1{rng.choice(TOLL_FREE_PREFIXES)}{rng.randint(2, 9)}{rng.randrange(10**6):06d}"
