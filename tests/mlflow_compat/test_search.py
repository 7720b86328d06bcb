"""MLflow's LIKE and ILIKE in search filters: SQL's meaning, in time linear in the text."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mlflow_compat.search import like, matches, parse_filter


def _by_regex(pattern: str, text: str, ignore_case: bool) -> bool:
    """SQL LIKE spelled as a regex (`%` any run, `_` any one character): correct, but it backtracks."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, (re.IGNORECASE if ignore_case else 0) | re.DOTALL) is not None


@settings(max_examples=2000, derandomize=True)
@given(st.text("ab%_A.\n", max_size=8), st.text("abA.\n%_", max_size=10), st.booleans())
def test_like_means_what_sql_like_means(pattern, text, ignore_case):
    assert like(pattern, text, ignore_case=ignore_case) == _by_regex(pattern, text, ignore_case)


def test_a_pattern_that_makes_a_regex_backtrack_is_answered():
    value = "a" * 6000  # a param value of MLflow's largest size
    assert not like("%a%a%a%a%a%a%a%b", value, ignore_case=False)
    assert like("%a%a%a%a%a%a%a%", value, ignore_case=False)
    record = {"params": {"note": value}}
    assert not matches(parse_filter("params.note LIKE '%a%a%a%a%a%a%a%b'"), record)
    assert matches(parse_filter("params.note ILIKE 'A%a_a'"), record)
