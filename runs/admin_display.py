"""How numbers and times read in the admin: short where a reviewer scans, exact on hover.

A list shows N as `110M`, D as `3.0B`, a budget as `1e22`, a loss to four significant digits and an epoch
timestamp as a date; each cell carries the exact stored value in its `title`, and the change page shows the exact
value next to the short one. The `*_label` functions return plain text (tables built in Python, plots' captions);
the `*_html` functions wrap that text with the exact value for hovering. Every function accepts None and answers
"—" for it, so a missing value never reads as zero.
"""

import math
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

MISSING = "—"
_UNITS = ((1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T"))
_BYTE_UNITS = {"k": "kB", "M": "MB", "B": "GB", "T": "TB"}


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def count_label(value: Any) -> str:
    """A count of parameters or tokens in words a reviewer reads at a glance: 110M, 3.0B, 70B, 1.4T, 512.

    One decimal below 10 of a unit (3.0B, 1.4T), three significant digits above (110M, 12.5B); below a
    thousand the number itself. Beyond 999T the scientific form (2.5e15).
    """
    number = _finite(value)
    if number is None:
        return MISSING
    size = abs(number)
    if size < 1e3:
        return f"{number:.4g}" if number != int(number) else str(int(number))
    unit = max(i for i, (factor, _) in enumerate(_UNITS) if size >= factor)
    if size / _UNITS[unit][0] >= 999.5:  # rounds up into the next unit: 999.7B reads 1.0T
        if unit == len(_UNITS) - 1:
            return sci_label(number)
        unit += 1
    factor, suffix = _UNITS[unit]
    scaled = number / factor
    text = f"{scaled:.1f}" if abs(scaled) < 9.95 else f"{scaled:.3g}"
    return f"{text}{suffix}"


def sci_label(value: Any) -> str:
    """A quantity spanning many decades (a FLOP budget) in the short scientific form: 1e22, 3.5e21, 0.001."""
    number = _finite(value)
    if number is None:
        return MISSING
    text = f"{number:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def decimal_label(value: Any, digits: int = 4) -> str:
    """A measured value (loss, R², a fitted exponent) to `digits` significant digits: 3.350, 3.284, 0.03862."""
    number = _finite(value)
    if number is None:
        return MISSING
    if number != 0 and (abs(number) >= 10**digits or abs(number) < 1e-3):
        return sci_label(number)
    return f"{number:#.{digits}g}".rstrip(".")  # trailing zeros kept: 3.000 reads as a loss, not a count


def bits_label(value: Any) -> str:
    """A bit width: 8, 4.25."""
    number = _finite(value)
    return MISSING if number is None else f"{number:g}"


def bytes_label(value: Any) -> str:
    """A size in bytes in decimal units: 13.2 GB, 512 MB, 900 B."""
    number = _finite(value)
    if number is None:
        return MISSING
    if abs(number) < 1e3:
        return f"{number:.0f} B"
    label = count_label(number)
    if label[-1] not in _BYTE_UNITS:  # beyond the units: the scientific form
        return f"{label} B"
    return f"{label[:-1]} {_BYTE_UNITS[label[-1]]}"


def exact_text(value: Any) -> str:
    """The stored value in full, for hovering: 70,000,000 for an integer, Python's shortest repr for a float."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def with_exact(text: str, exact: Any) -> SafeString:
    """`text` with the exact value shown on hover (a title); both are escaped."""
    return format_html(
        '<span class="exact" title="{}" style="white-space: nowrap">{}</span>',
        exact_text(exact) if exact is not None else "",
        text,
    )


def count_html(value: Any) -> SafeString:
    return with_exact(count_label(value), value)


def sci_html(value: Any) -> SafeString:
    return with_exact(sci_label(value), value)


def bytes_html(value: Any) -> SafeString:
    return with_exact(bytes_label(value), value)


def decimal_html(value: Any, digits: int = 4) -> SafeString:
    return with_exact(decimal_label(value, digits), value)


def count_with_exact(value: Any) -> str:
    """For a change page: the exact count followed by its short form, "70,000,000 (70M)"."""
    if _finite(value) is None:
        return MISSING
    return f"{exact_text(value)} ({count_label(value)})"


def epoch_ms_datetime(value: Any) -> datetime | None:
    """An MLflow timestamp (milliseconds since the Unix epoch) as an aware datetime; None when absent or absurd."""
    number = _finite(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def datetime_label(value: datetime | None, *, minutes: bool = True) -> str:
    """A time in the list's short form, in the site's time zone: 2026-12-04 15:38 (or the day alone, 2026-12-04)."""
    if value is None:
        return MISSING
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d")


def datetime_html(value: datetime | None, *, raw: Any = None, minutes: bool = True) -> SafeString:
    """The short time with the exact one on hover (ISO 8601 to the second; and the stored number when given)."""
    if value is None:
        return format_html("{}", MISSING)
    exact = timezone.localtime(value).isoformat(timespec="seconds")
    if raw is not None:
        exact = f"{exact} ({raw} ms since the epoch)"
    label = datetime_label(value, minutes=minutes)
    return format_html('<span class="exact" title="{}" style="white-space: nowrap">{}</span>', exact, label)
