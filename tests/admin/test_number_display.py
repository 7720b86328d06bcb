"""Numbers in the admin read at a glance (110M, 3.0B, 1e22, four significant digits, dates) with the exact value
on hover: runs.admin_display, used by every list and page."""

from datetime import UTC, datetime

import pytest

from runs.admin_display import (
    count_html,
    count_label,
    count_with_exact,
    datetime_html,
    decimal_label,
    epoch_ms_datetime,
    sci_label,
)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (70_000_000, "70M"),
        (110e6, "110M"),
        (3e9, "3.0B"),
        (3.2e9, "3.2B"),
        (12.5e9, "12.5B"),
        (70e9, "70B"),
        (1.4e12, "1.4T"),
        (999.7e9, "1.0T"),  # rounds into the next unit instead of reading 1e+03B
        (999.4e9, "999B"),
        (5_000, "5.0k"),
        (512, "512"),
        (0, "0"),
        (2.5e15, "2.5e15"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_counts_read_in_units(value, label):
    assert count_label(value) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [(10_000_000_000_000_000_000_000, "1e22"), (3.5e21, "3.5e21"), (123.0, "123"), (None, "—")],
)
def test_budgets_read_in_scientific_form(value, label):
    assert sci_label(value) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (3.3499999999999996, "3.350"),
        (3.284403507366314, "3.284"),
        (3.0, "3.000"),  # a loss, not a count
        (0.0386234, "0.03862"),
        (1e-5, "1e-5"),
        (0.0, "0.000"),
    ],
)
def test_losses_read_to_four_significant_digits(value, label):
    assert decimal_label(value) == label


def test_the_exact_value_is_on_hover_and_on_the_change_page():
    assert count_html(70_000_000) == ('<span class="exact" title="70,000,000" style="white-space: nowrap">70M</span>')
    assert count_with_exact(70_000_000) == "70,000,000 (70M)"


def test_an_mlflow_timestamp_reads_as_a_date_with_the_number_on_hover():
    when = epoch_ms_datetime(1796393071015)

    assert when == datetime(2026, 12, 4, 14, 4, 31, 15000, tzinfo=UTC)
    html = datetime_html(when, raw=1796393071015)
    assert ">2026-12-04 14:04<" in html
    assert "1796393071015 ms since the epoch" in html
    assert epoch_ms_datetime(None) is None
    assert epoch_ms_datetime(10**30) is None  # beyond any date: no value rather than an error page
