"""A real browser through the admin: log in, runs, a fit with plots, a plan with its next runs; no console errors."""

import os
import shutil
from pathlib import Path

import pytest

from tests.factories import PASSWORD, staff_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


def _required(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    binary = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver_path = shutil.which(DRIVER)
    if binary is None or driver_path is None:
        _required("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _required("needs selenium: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 6000))
    driver.save_screenshot(str(ARTIFACTS / f"admin-{name}.png"))


def _console_errors(driver) -> list[str]:
    # The browser asks for /favicon.ico by itself; the admin has none, which is not an error of the page.
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "/favicon.ico" not in entry["message"]
    ]


@pytest.mark.browser
def test_review_in_a_real_browser(browser, live_server, transactional_db, alpha, alpha_fits):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    staff_user("ada", team=alpha, role="member")
    driver = browser

    # given: logged in through the login form
    driver.get(f"{live_server.url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("ada")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "/admin/login/" not in d.current_url)  # the POST's redirect
    assert "Log in" not in driver.title

    # the run list, filtered to 4-bit weights
    driver.get(f"{live_server.url}/admin/runs/run/?weight_bits=4.0")
    assert driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert driver.find_element(By.ID, "changelist-filter")
    _shot(driver, "runs")
    assert _console_errors(driver) == []

    # the fit page: six inline SVG plots (the sixth: capacity density over time) and the diff
    v2 = alpha_fits[1]
    driver.get(f"{live_server.url}/admin/fits/fit/{v2.pk}/change/")
    plots = driver.find_elements(By.CSS_SELECTOR, "figure.fit-plot svg")
    assert len(plots) == 6
    assert all(plot.size["width"] > 200 and plot.size["height"] > 100 for plot in plots)
    assert "Since version 1" in driver.find_element(By.CSS_SELECTOR, ".fit-diff").text
    _shot(driver, "fit")
    assert _console_errors(driver) == []

    # the plan form, submitted
    driver.get(f"{live_server.url}/admin/planner/plan/add/")
    driver.find_element(By.NAME, "family").send_keys("kumar")
    driver.find_element(By.NAME, "flops").send_keys("1e21")
    driver.find_element(By.NAME, "constraints").send_keys('{"post_train_bits": 4}')
    _shot(driver, "plan-form")
    driver.find_element(By.NAME, "_plan").click()
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".errorlist, .errornote")]
    assert driver.find_elements(By.ID, "plan-comparison"), errors
    assert driver.find_elements(By.CSS_SELECTOR, "#plot-plan-contour svg")
    assert driver.find_elements(By.CSS_SELECTOR, "#suggestion-runs tbody tr")
    _shot(driver, "plan")
    assert _console_errors(driver) == []

    # next-run suggestions for another experiment budget: the GET form sits outside the admin's POST form
    driver.find_element(By.ID, "id_experiment_flops").send_keys("2e18")
    driver.find_element(By.CSS_SELECTOR, "#plan-suggestions input[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "experiment_flops=2e18" in d.current_url)
    assert "2e+18 FLOPs" in driver.find_element(By.ID, "suggestion-summary").text
    assert driver.find_elements(By.CSS_SELECTOR, "#suggestion-runs tbody tr")
    assert _console_errors(driver) == []
