"""Helpers of the browser tests (the `browser` fixture is in tests/conftest.py)."""

from typing import Any


def console_errors(driver: Any) -> list[str]:
    # The browser asks for /favicon.ico by itself; the admin has none, which is not an error of the page.
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "/favicon.ico" not in entry["message"]
    ]
