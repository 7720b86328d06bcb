"""The API docs page renders in a real browser under the Content-Security-Policy: no violation, no console error.

Swagger UI's script comes from a URL (SpectacularSwaggerSplitView), since the policy forbids inline scripts; the
admin's pages are driven the same way in tests/admin/test_browser.py.
"""

import time

import pytest

from tests.browser import console_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_page_renders_under_the_policy(browser, live_server):
    browser.get(f"{live_server.url}/api/v1/docs/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not browser.find_elements("css selector", ".opblock"):
        time.sleep(0.2)
    assert browser.find_elements("css selector", ".opblock"), "Swagger UI drew no operations"
    assert "/api/v1/predict/" in browser.page_source
    assert console_errors(browser) == []
