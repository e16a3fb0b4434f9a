"""Bar charts drawn on the server as SVG: no script, nothing for the Content-Security-Policy to
allow, every label plain text that Django's templates escape.

Two parts. The geometry (`time_chart`, `category_chart`) is pure: it takes values and returns where
every bar, tick and label goes; templates/reporting/_chart.html draws it (`{% include
"reporting/_chart.html" with chart=chart %}`, plus static/css/chart.css in the page's head). The read
(`usage_amounts`, `usage_over_time`) sums the daily and monthly usage totals per period (or account)
and unit, so a chart shows one unit at a time, or cost. Whether a viewer may see cost is the
caller's question: `accounts.permissions.can_see_pricing`.

A dashboard's month-to-date spend by day:

    chart = charts.usage_over_time(accounts=[account.pk], start=today.replace(day=1), end=today,
                                   measure=charts.cost_measure(), title="Spend this month by day",
                                   bucket=charts.BUCKET_DAY)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from accounts.models import Account
from billing.models import MonthlyUsage, Product
from billing.money import format_money
from billing.pricing import Prices
from billing.usage import selectors
from billing.usage.selectors import AccountScope
from reporting.forms import CHART_COST
from reporting.tables import format_quantity

COST = CHART_COST  # the value the report form carries in its URLs
BUCKET_DAY = "day"
BUCKET_WEEK = "week"
BUCKET_MONTH = "month"
BUCKETS = (BUCKET_DAY, BUCKET_WEEK, BUCKET_MONTH)
DAYS_BY_DAY = 62  # longer ranges are charted by week, and beyond DAYS_BY_WEEK by month
DAYS_BY_WEEK = 190
CATEGORY_LIMIT = 20
CATEGORY_LABEL_CHARS = 30

# The drawing, in the SVG's own units (the viewBox): text is 12 units high, about 7 wide a character.
WIDTH = 720
TIME_HEIGHT = 260
CHAR_WIDTH = 7.0
LABEL_GAP = 10.0
MAX_BAR_WIDTH = 56.0
CATEGORY_ROW = 28.0
CATEGORY_BAR = 20.0
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LABEL_STEPS = {
    BUCKET_DAY: (1, 2, 7, 14, 28, 56, 91, 182),
    BUCKET_WEEK: (1, 2, 4, 8, 13, 26),
    BUCKET_MONTH: (1, 2, 3, 6, 12),
}


# --- What a chart measures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """Cost in one currency, or the quantity of one unit (minutes never add up with messages)."""

    key: str  # COST, or the unit
    name: str  # "Cost (USD)", "Quantity (minute)"
    unit: str = ""
    currency: str = ""

    @property
    def is_money(self) -> bool:
        return self.key == COST

    def text(self, value: Decimal) -> str:
        """A value as people read it: `USD 1.23`, `17.5 minute`."""
        return format_money(value, self.currency) if self.is_money else f"{format_quantity(value)} {self.unit}"

    def tick_text(self, value: Decimal, ticks: Sequence[Decimal]) -> str:
        """A tick of the value axis: as many decimals as the ticks need, the same for all of them."""
        if not self.is_money:
            return format_quantity(value)
        places = 0 if all(t == t.to_integral_value() for t in ticks) else 2
        return f"{self.currency} {value:,.{places}f}"


def cost_measure(currency: str = "USD") -> Measure:
    return Measure(key=COST, name=f"Cost ({currency})", currency=currency)


def quantity_measure(unit: str) -> Measure:
    return Measure(key=unit, name=f"Quantity ({unit})", unit=unit)


# --- Geometry ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what the bar stands for, in full: "Mon 3 Mar 2025", "6–12 Jan 2025", a name
    value: Decimal  # exact
    text: str  # the value as people read it


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    """Everything _chart.html draws; coordinates are in the viewBox (0 0 width height)."""

    kind: str  # "time" (vertical bars along dates) or "category" (horizontal bars, largest first)
    title: str
    description: str  # the chart in one sentence, for screen readers
    measure: Measure
    bucket: str  # BUCKET_*, or "" for a category chart
    width: int
    height: int
    plot_left: float
    plot_top: float
    plot_right: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    x_labels: tuple[Label, ...]  # dates under the bars, or names left of them
    y_ticks: tuple[Tick, ...]  # round values with a grid line (time charts)
    value_labels: tuple[Label, ...]  # each bar's value beside it (category charts)
    total: str
    hidden: int = 0  # groups left out of a category chart (smaller than its bars, not zero)

    @property
    def tick_x(self) -> float:
        return self.plot_left - 8


def time_chart(
    points: Iterable[tuple[date, Decimal]],
    *,
    start: date,
    end: date,
    measure: Measure,
    title: str,
    bucket: str | None = None,
) -> Chart:
    """Bars along the UTC days from `start` to `end` (both included), one a day, week or month
    (`bucket`; by default by the range's length), zero where no point falls. Points of the same
    bucket add up; a point outside the range is an error, not something to drop silently."""
    if end < start:
        raise ValueError(f"The chart ends ({end}) before it starts ({start}).")
    bucket = bucket or pick_bucket(start, end)
    if bucket not in BUCKETS:
        raise ValueError(f"Unknown bucket {bucket!r}; expected one of {', '.join(BUCKETS)}.")
    spans = buckets(start, end, bucket)
    sums = [Decimal(0)] * len(spans)
    firsts = [first for first, _ in spans]
    for day, value in points:
        if not start <= day <= end:
            raise ValueError(f"A point on {day} is outside the chart's range {start} to {end}.")
        sums[_bucket_index(firsts, day)] += value
    integral = not measure.is_money and all(v == v.to_integral_value() for v in sums)
    low, high = min([Decimal(0), *sums]), max([Decimal(0), *sums])
    ticks = value_ticks(high, low=low, integral=integral, money=measure.is_money)
    tick_texts = [measure.tick_text(t, ticks) for t in ticks]
    left = max(len(t) for t in tick_texts) * CHAR_WIDTH + 2 * LABEL_GAP
    top, right, bottom = 12.0, WIDTH - 24.0, TIME_HEIGHT - 30.0
    scale = _Scale(ticks[0], ticks[-1], bottom, top)
    slot = (right - left) / len(spans)
    width = min(slot * 0.8 if slot > 4 else slot, MAX_BAR_WIDTH)
    bars = []
    for index, ((first, last), value) in enumerate(zip(spans, sums, strict=True)):
        x = left + slot * index + (slot - width) / 2
        y0, y1 = scale(max(value, Decimal(0))), scale(min(value, Decimal(0)))
        bars.append(
            Bar(_r(x), _r(y0), _r(width), _r(y1 - y0), span_label(first, last, start, end), value, measure.text(value))
        )
    centres = [left + slot * (index + 0.5) for index in range(len(spans))]
    return Chart(
        kind="time",
        title=title,
        description=_time_description(title, bars, bucket, start, end, measure),
        measure=measure,
        bucket=bucket,
        width=WIDTH,
        height=TIME_HEIGHT,
        plot_left=_r(left),
        plot_top=top,
        plot_right=right,
        plot_bottom=bottom,
        bars=tuple(bars),
        x_labels=_date_labels(firsts, centres, bucket, slot, bottom + 20),
        y_ticks=tuple(Tick(_r(scale(t)), text) for t, text in zip(ticks, tick_texts, strict=True)),
        value_labels=(),
        total=measure.text(sum(sums, Decimal(0))),
    )


def category_chart(
    items: Iterable[tuple[str, Decimal]], *, measure: Measure, title: str, limit: int = CATEGORY_LIMIT
) -> Chart:
    """Horizontal bars, largest first, of the `limit` largest groups (names in full in each bar's
    label, shortened on the axis); groups with nothing are left out."""
    ranked = sorted(((name, value) for name, value in items if value), key=lambda item: item[1], reverse=True)
    shown = ranked[:limit]
    names = [_shorten(name) for name, _ in shown]
    texts = [measure.text(value) for _, value in shown]
    left = min(max((len(n) for n in names), default=4) * CHAR_WIDTH, WIDTH * 0.4) + LABEL_GAP
    right = WIDTH - max((len(t) for t in texts), default=4) * CHAR_WIDTH - LABEL_GAP
    top = 8.0
    height = int(top * 2 + CATEGORY_ROW * max(len(shown), 1))
    high = max((value for _, value in shown), default=Decimal(0))
    scale = _Scale(Decimal(0), high or Decimal(1), left, right)
    bars, x_labels, value_labels = [], [], []
    for index, ((name, value), short, text) in enumerate(zip(shown, names, texts, strict=True)):
        y = top + CATEGORY_ROW * index + (CATEGORY_ROW - CATEGORY_BAR) / 2
        end = scale(max(value, Decimal(0)))
        bars.append(Bar(_r(left), _r(y), _r(end - left), CATEGORY_BAR, name, value, text))
        x_labels.append(Label(_r(left - LABEL_GAP / 2), _r(y + CATEGORY_BAR / 2 + 4), short, "end"))
        value_labels.append(Label(_r(end + LABEL_GAP / 2), _r(y + CATEGORY_BAR / 2 + 4), text, "start"))
    return Chart(
        kind="category",
        title=title,
        description=_category_description(title, bars, len(ranked)),
        measure=measure,
        bucket="",
        width=WIDTH,
        height=height,
        plot_left=_r(left),
        plot_top=top,
        plot_right=_r(right),
        plot_bottom=height - top,
        bars=tuple(bars),
        x_labels=tuple(x_labels),
        y_ticks=(),
        value_labels=tuple(value_labels),
        total=measure.text(sum((value for _, value in ranked), Decimal(0))),
        hidden=len(ranked) - len(shown),
    )


def ranked_chart(
    top: Sequence[tuple[str, Decimal]], *, groups: int, total: Decimal, measure: Measure, title: str
) -> Chart:
    """`category_chart` of many groups from only their largest, `top` (largest first, none zero, at
    most CATEGORY_LIMIT), read with the number of `groups` that are not zero and their `total`: the
    same chart as of every group."""
    chart = category_chart(top, measure=measure, title=title)
    return replace(
        chart,
        description=_category_description(title, list(chart.bars), groups),
        total=measure.text(total),
        hidden=groups - len(chart.bars),
    )


def pick_bucket(start: date, end: date) -> str:
    days = (end - start).days + 1
    return BUCKET_DAY if days <= DAYS_BY_DAY else BUCKET_WEEK if days <= DAYS_BY_WEEK else BUCKET_MONTH


def buckets(start: date, end: date, bucket: str) -> list[tuple[date, date]]:
    """(first, last) day of every bucket from `start` to `end`, clipped to the range: weeks start
    on Monday, months on the 1st."""
    spans = []
    first = start
    while first <= end:
        if bucket == BUCKET_DAY:
            last = first
        elif bucket == BUCKET_WEEK:
            last = first + timedelta(days=6 - first.weekday())
        else:
            last = _next_month(first) - timedelta(days=1)
        spans.append((first, min(last, end)))
        first = last + timedelta(days=1)
    return spans


def value_ticks(high: Decimal, *, low: Decimal = Decimal(0), integral: bool, money: bool = False) -> list[Decimal]:
    """Round values from at or below `low` to at or above `high`, about four steps of 1, 2, 2.5 or
    5 times a power of ten (whole steps for whole quantities, at least a cent for money)."""
    span = high - low if high > low else Decimal(1)
    raw = span / 4
    magnitude = Decimal(1).scaleb(raw.adjusted())
    step = next(
        magnitude * m for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)) if magnitude * m >= raw
    )
    if integral and step < 1:
        step = Decimal(1)
    if money and step < Decimal("0.01"):
        step = Decimal("0.01")
    first = (low / step).to_integral_value(rounding=ROUND_FLOOR)
    last = max((high / step).to_integral_value(rounding=ROUND_CEILING), first + 1)
    return [step * n for n in range(int(first), int(last) + 1)]


def span_label(first: date, last: date, start: date | None = None, end: date | None = None) -> str:
    """A bucket in words: "Mon 3 Mar 2025", "6–12 Jan 2025", "29 Dec 2025 – 4 Jan 2026", "July 2024"."""
    if first == last:
        return f"{WEEKDAYS[first.weekday()]} {_day(first)}"
    if first.day == 1 and last == _next_month(first) - timedelta(days=1):
        return f"{MONTH_NAMES[first.month - 1]} {first.year}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{_day(last)}"
    if first.year == last.year:
        return f"{first.day} {MONTHS[first.month - 1]} – {_day(last)}"
    return f"{_day(first)} – {_day(last)}"


class _Scale:
    """Maps values from `low`..`high` onto `start`..`stop` in the drawing."""

    def __init__(self, low: Decimal, high: Decimal, start: float, stop: float) -> None:
        self.low, self.span, self.start, self.stop = low, (high - low) or Decimal(1), start, stop

    def __call__(self, value: Decimal) -> float:
        return self.start + float((value - self.low) / self.span) * (self.stop - self.start)


def _r(value: float) -> float:
    return round(value, 2)


def _day(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _bucket_index(firsts: list[date], day: date) -> int:
    index = 0
    low, high = 0, len(firsts) - 1
    while low <= high:  # the last bucket starting on or before `day`
        middle = (low + high) // 2
        if firsts[middle] <= day:
            index, low = middle, middle + 1
        else:
            high = middle - 1
    return index


def _axis_text(day: date, bucket: str, year: bool) -> str:
    text = MONTHS[day.month - 1] if bucket == BUCKET_MONTH else f"{day.day} {MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if year else text


def _date_labels(firsts: list[date], centres: list[float], bucket: str, slot: float, y: float) -> tuple[Label, ...]:
    """Labels under every step-th bar, the smallest step at which no two of them overlap; the year
    on the first label and wherever it changes."""
    for step in (*LABEL_STEPS[bucket], len(firsts)):
        chosen = list(range(0, len(firsts), step))
        texts = []
        for n, index in enumerate(chosen):
            year = n == 0 or firsts[chosen[n - 1]].year != firsts[index].year
            texts.append(_axis_text(firsts[index], bucket, year))
        widths = [len(text) * CHAR_WIDTH for text in texts]
        if all((widths[n] + widths[n + 1]) / 2 + LABEL_GAP <= slot * step for n in range(len(texts) - 1)):
            return tuple(Label(_r(centres[i]), y, text) for i, text in zip(chosen, texts, strict=True))
    raise AssertionError("the last step shows one label")  # pragma: no cover


def _shorten(name: str) -> str:
    return name if len(name) <= CATEGORY_LABEL_CHARS else name[: CATEGORY_LABEL_CHARS - 1].rstrip() + "…"


def _time_description(title: str, bars: list[Bar], bucket: str, start: date, end: date, measure: Measure) -> str:
    count = f"{len(bars)} {bucket}{'' if len(bars) == 1 else 's'}"
    when = f"{_day(start)}" if start == end else f"from {_day(start)} to {_day(end)}"
    total = measure.text(sum((bar.value for bar in bars), Decimal(0)))
    largest = max(bars, key=lambda bar: bar.value)
    if not largest.value:
        return f"{title}, {count} {when} (UTC): nothing."
    where = "on" if bucket == BUCKET_DAY or largest.label[:3] in WEEKDAYS else "in"
    return f"{title}, {count} {when} (UTC): total {total}; highest {largest.text} {where} {largest.label}."


def _category_description(title: str, bars: list[Bar], groups: int) -> str:
    if not bars:
        return f"{title}: nothing."
    listed = "; ".join(f"{bar.label}: {bar.text}" for bar in bars[:3])
    more = f"; and {groups - 3} more" if groups > 3 else ""
    return f"{title}, largest first: {listed}{more}."


# --- Reading usage per period and unit -------------------------------------------------------------------
# The report's own selectors (billing.usage.selectors) sum every unit together; a chart needs them apart.

BY_DAY = "day"
BY_MONTH = "month"
BY_ACCOUNT = "account"


@dataclass(frozen=True)
class Amount:
    """Usage of one unit in one period (a day, or a month keyed by its first day inside the range)
    or of one account (keyed by its pk)."""

    key: date | int
    unit: str
    quantity: Decimal
    cost: Decimal
    records: int

    def value(self, measure: Measure) -> Decimal:
        """What this amount adds to a chart of `measure`: its cost, its quantity if it is of the
        measure's unit, else nothing."""
        if measure.is_money:
            return self.cost
        return self.quantity if self.unit == measure.unit else Decimal(0)


def usage_amounts(
    *,
    accounts: AccountScope,
    start: date,
    end: date,
    product: Product | None,
    by: str,
    prices: Prices | None = None,
) -> list[Amount]:
    """Quantity, cost and records of `accounts` per unit and per day, month or account, from `start`
    to `end` (UTC days, both included), summed in the database: calendar months wholly inside the
    range come from the monthly totals (unless by day), the other days from the daily totals. At most
    two queries, whatever the number of accounts. The cost is at `prices`, the prices the chart's
    account pays (billing.pricing.prices_for; None: the stored cost); where they are not the stored
    cost the totals are also grouped by product and month, each priced by `Prices.cost`."""
    repriced = prices is not None and prices.repriced
    daily = selectors.daily_usage(accounts=accounts, start=start, end=end, product=product)
    parts: list[QuerySet[Any]] = []
    whole = _whole_months(start, end) if by != BY_DAY else None
    if whole is not None:
        first, after = whole
        daily = daily.filter(Q(day__lt=first) | Q(day__gte=after))
        monthly = MonthlyUsage.objects.filter(account__in=accounts, month__gte=first, month__lt=after)
        monthly = monthly.filter(product=product) if product is not None else monthly
        monthly = monthly.annotate(priced=F("month")) if repriced else monthly
        parts.append(monthly.annotate(bucket=F("month") if by == BY_MONTH else F("account_id")))
    if whole is None or start < whole[0] or end >= whole[1]:
        key = F("day") if by == BY_DAY else TruncMonth("day") if by == BY_MONTH else F("account_id")
        daily = daily.annotate(priced=F("day")) if repriced else daily
        parts.append(daily.annotate(bucket=key))
    group = ("bucket", "product__unit", "product_id", "priced") if repriced else ("bucket", "product__unit")
    sums: dict[tuple[date | int, str], list[Any]] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for part in parts:
        rows = part.values(*group).annotate(q=Sum("quantity"), c=Sum("cost"), r=Sum("records"))
        for row in rows.order_by():
            bucket = row["bucket"]
            if by == BY_MONTH:
                bucket = max(_as_day(bucket), start)  # the first day of the month inside the range
            cost = row["c"] or Decimal(0)
            if repriced and prices is not None:
                cost = prices.cost(row["product_id"], _as_day(row["priced"]), row["q"] or Decimal(0), cost)
            total = sums[(bucket, row["product__unit"])]
            total[0] += row["q"] or 0
            total[1] += cost
            total[2] += row["r"] or 0
    return [
        Amount(key, unit, q, c, r) for (key, unit), (q, c, r) in sorted(sums.items(), key=lambda item: str(item[0]))
    ]


def _as_day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def units_by_use(amounts: Iterable[Amount]) -> list[str]:
    """The units of `amounts`, the most used (by records) first."""
    records: dict[str, int] = defaultdict(int)
    for amount in amounts:
        records[amount.unit] += amount.records
    return sorted(records, key=lambda unit: (-records[unit], unit))


def usage_over_time(
    *,
    accounts: AccountScope,
    start: date,
    end: date,
    measure: Measure,
    title: str,
    product: Product | None = None,
    bucket: str | None = None,
) -> Chart:
    """A time chart of `accounts`' usage (one unit, or cost: check can_see_pricing first)."""
    bucket = bucket or pick_bucket(start, end)
    amounts = usage_amounts(
        accounts=accounts, start=start, end=end, product=product, by=BY_MONTH if bucket == BUCKET_MONTH else BY_DAY
    )
    return time_chart(by_period(amounts, measure), start=start, end=end, measure=measure, title=title, bucket=bucket)


def account_chart(amounts: Iterable[Amount], *, measure: Measure, title: str, limit: int = CATEGORY_LIMIT) -> Chart:
    """A category chart of amounts read `by=BY_ACCOUNT`, named by their accounts (one query for
    the `limit` largest)."""
    values: dict[int, Decimal] = defaultdict(Decimal)
    for amount in amounts:
        if isinstance(amount.key, int):
            values[amount.key] += amount.value(measure)
    ranked = sorted((pk for pk in values if values[pk]), key=lambda pk: (-values[pk], pk))
    names = dict(Account.objects.filter(pk__in=ranked[:limit]).values_list("pk", "name"))
    items = [(names.get(pk, ""), values[pk]) for pk in ranked[:limit]]
    chart = category_chart(items, measure=measure, title=title, limit=limit)
    return replace(chart, hidden=len(ranked) - len(items))


def by_period(amounts: Iterable[Amount], measure: Measure) -> list[tuple[date, Decimal]]:
    return [(a.key, a.value(measure)) for a in amounts if isinstance(a.key, date)]


def _whole_months(start: date, end: date) -> tuple[date, date] | None:
    """[first, after): the first days of the calendar months wholly inside start..end, or None."""
    first = start if start.day == 1 else _next_month(start)
    after = (end + timedelta(days=1)).replace(day=1)
    return (first, after) if first < after else None
