"""reporting.charts: the geometry of server-drawn SVG charts, without a database or a page.

A time chart buckets dated values by day, week or month over any range (one day to a year); its
value axis has round ticks; its labels are plain text (the template escapes them). A category chart
draws the largest groups as horizontal bars.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from reporting import charts
from reporting.charts import BUCKET_DAY, BUCKET_MONTH, BUCKET_WEEK

MINUTES = charts.quantity_measure("minute")
COST = charts.cost_measure("USD")


def d(text: str) -> date:
    return date.fromisoformat(text)


def test_one_day_is_one_bar_of_sensible_width_labelled_with_its_date():
    chart = charts.time_chart(
        [(d("2025-03-03"), Decimal("17"))], start=d("2025-03-03"), end=d("2025-03-03"), measure=MINUTES, title="T"
    )
    assert chart.bucket == BUCKET_DAY
    assert len(chart.bars) == 1
    bar = chart.bars[0]
    assert 0 < bar.width <= 60  # never one solid block across the plot
    assert bar.label == "Mon 3 Mar 2025" and bar.text == "17 minute"
    assert [label.text for label in chart.x_labels] == ["3 Mar 2025"]
    assert abs(chart.x_labels[0].x - (bar.x + bar.width / 2)) < 0.01  # under its bar
    assert not any("ms" in label.text for label in chart.x_labels)


def test_a_month_is_a_bar_a_day_zero_where_nothing_was_used():
    points = [(d("2025-03-01"), Decimal("4")), (d("2025-03-01"), Decimal("6")), (d("2025-03-15"), Decimal("2.5"))]
    chart = charts.time_chart(points, start=d("2025-03-01"), end=d("2025-03-31"), measure=MINUTES, title="T")
    assert chart.bucket == BUCKET_DAY and len(chart.bars) == 31
    values = [bar.value for bar in chart.bars]
    assert values[0] == Decimal("10") and values[14] == Decimal("2.5") and values.count(Decimal(0)) == 29
    assert chart.bars[1].height == 0
    texts = [label.text for label in chart.x_labels]
    assert texts[0] == "1 Mar 2025" and 3 <= len(texts) <= 12
    assert all(text.endswith(("Mar", "Mar 2025")) for text in texts)
    xs = [bar.x for bar in chart.bars]
    assert xs == sorted(xs) and chart.bars[-1].x + chart.bars[-1].width <= chart.plot_right + 0.01


def test_a_quarter_is_bucketed_by_week_from_monday_clipped_to_the_range():
    start, end = d("2025-01-01"), d("2025-03-31")  # a Wednesday to a Monday
    points = [(start + timedelta(days=n), Decimal(1)) for n in range(90)]
    chart = charts.time_chart(points, start=start, end=end, measure=MINUTES, title="T")
    assert chart.bucket == BUCKET_WEEK
    assert chart.bars[0].label == "1–5 Jan 2025" and chart.bars[0].value == 5  # Wed to Sun
    assert chart.bars[1].label == "6–12 Jan 2025" and chart.bars[1].value == 7
    assert chart.bars[-1].label == "Mon 31 Mar 2025" and chart.bars[-1].value == 1
    assert sum(bar.value for bar in chart.bars) == 90


def test_a_year_is_bucketed_by_month_with_the_year_on_the_first_label_and_january():
    start, end = d("2024-06-15"), d("2025-06-14")
    points = [(start + timedelta(days=n), Decimal("0.5")) for n in range(365)]
    chart = charts.time_chart(points, start=start, end=end, measure=MINUTES, title="T")
    assert chart.bucket == BUCKET_MONTH and len(chart.bars) == 13
    texts = [label.text for label in chart.x_labels]
    assert texts[:3] == ["Jun 2024", "Jul", "Aug"] and "Jan 2025" in texts
    assert chart.bars[0].label == "15–30 Jun 2024" and chart.bars[1].label == "July 2024"
    assert chart.bars[-1].label == "1–14 Jun 2025"


def test_the_bucket_can_be_chosen():
    chart = charts.time_chart([], start=d("2025-01-01"), end=d("2025-12-31"), measure=COST, title="T", bucket="day")
    assert chart.bucket == BUCKET_DAY and len(chart.bars) == 365
    assert len(chart.x_labels) <= 12


@pytest.mark.parametrize(
    ("high", "integral", "expected"),
    [
        (Decimal("17"), True, ["0", "5", "10", "15", "20"]),
        (Decimal("1"), True, ["0", "1"]),
        (Decimal("3"), True, ["0", "1", "2", "3"]),
        (Decimal("0.6"), False, ["0", "0.2", "0.4", "0.6"]),
        (Decimal("1234"), True, ["0", "500", "1,000", "1,500"]),
        (Decimal("0"), True, ["0", "1"]),
        (Decimal("9.8"), False, ["0", "2.5", "5", "7.5", "10"]),
    ],
)
def test_the_value_axis_has_round_ticks(high, integral, expected):
    ticks = charts.value_ticks(high, integral=integral)
    assert [charts.quantity_measure("x").tick_text(t, ticks) for t in ticks] == expected


def test_money_ticks_and_values_are_money():
    points = [(d("2025-03-01"), Decimal("0.004")), (d("2025-03-02"), Decimal("1.2345"))]
    chart = charts.time_chart(points, start=d("2025-03-01"), end=d("2025-03-02"), measure=COST, title="T")
    assert [tick.text for tick in chart.y_ticks] == ["USD 0.00", "USD 0.50", "USD 1.00", "USD 1.50"]
    assert [bar.text for bar in chart.bars] == ["USD 0.00", "USD 1.23"]
    assert chart.bars[1].value == Decimal("1.2345")  # exact; only the text is rounded
    assert chart.total == "USD 1.24"


def test_bars_and_ticks_share_one_scale():
    points = [(d("2025-03-01"), Decimal("20")), (d("2025-03-02"), Decimal("10"))]
    chart = charts.time_chart(points, start=d("2025-03-01"), end=d("2025-03-02"), measure=MINUTES, title="T")
    top = next(t for t in chart.y_ticks if t.text == "20")
    bottom = next(t for t in chart.y_ticks if t.text == "0")
    assert chart.bars[0].y == pytest.approx(top.y) and chart.bars[0].y + chart.bars[0].height == pytest.approx(bottom.y)
    assert chart.bars[1].height == pytest.approx(chart.bars[0].height / 2)


def test_the_description_says_what_the_chart_shows_in_words():
    points = [(d("2025-03-01"), Decimal("4")), (d("2025-03-02"), Decimal("9"))]
    chart = charts.time_chart(
        points, start=d("2025-03-01"), end=d("2025-03-03"), measure=MINUTES, title="Minutes by day"
    )
    assert chart.description == (
        "Minutes by day, 3 days from 1 Mar 2025 to 3 Mar 2025 (UTC): total 13 minute; "
        "highest 9 minute on Sun 2 Mar 2025."
    )


def test_points_outside_the_range_are_refused():
    with pytest.raises(ValueError, match="outside"):
        charts.time_chart(
            [(d("2025-04-01"), Decimal(1))], start=d("2025-03-01"), end=d("2025-03-31"), measure=MINUTES, title="T"
        )


def test_a_category_chart_draws_the_largest_first_and_counts_the_rest():
    items = [(f"Account {n}", Decimal(n)) for n in range(25)]
    chart = charts.category_chart(items, measure=MINUTES, title="T", limit=20)
    assert chart.kind == "category"
    assert [bar.label for bar in chart.bars][:3] == ["Account 24", "Account 23", "Account 22"]
    assert len(chart.bars) == 20 and chart.hidden == 4  # "Account 0" has none: left out, not hidden
    widths = [bar.width for bar in chart.bars]
    assert widths == sorted(widths, reverse=True)
    assert [label.text for label in chart.x_labels][:2] == ["Account 24", "Account 23"]


def test_a_long_name_is_shortened_on_the_axis_and_kept_whole_in_the_bar():
    name = "<b>" + "x" * 250
    chart = charts.category_chart([(name, Decimal(1))], measure=MINUTES, title="T")
    assert chart.bars[0].label == name
    assert chart.x_labels[0].text.endswith("…") and len(chart.x_labels[0].text) <= charts.CATEGORY_LABEL_CHARS
    assert chart.plot_left <= chart.width / 2
