"""A real browser through the admin: log in, runs, a fit with plots, a plan with its next runs; no console errors."""

from pathlib import Path

import pytest

from tests.browser import console_errors
from tests.factories import PASSWORD, staff_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 6000))
    driver.save_screenshot(str(ARTIFACTS / f"admin-{name}.png"))


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
    assert console_errors(driver) == []

    # the fit page: six inline SVG plots (the sixth: capacity density over time) and the diff
    v2 = alpha_fits[1]
    driver.get(f"{live_server.url}/admin/fits/fit/{v2.pk}/change/")
    plots = driver.find_elements(By.CSS_SELECTOR, "figure.fit-plot svg")
    assert len(plots) == 6
    assert all(plot.size["width"] > 200 and plot.size["height"] > 100 for plot in plots)
    assert "Since version 1" in driver.find_element(By.CSS_SELECTOR, ".fit-diff").text
    _shot(driver, "fit")
    assert console_errors(driver) == []

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
    assert console_errors(driver) == []

    # next-run suggestions for another experiment budget: the GET form sits outside the admin's POST form
    driver.find_element(By.ID, "id_experiment_flops").send_keys("2e18")
    driver.find_element(By.CSS_SELECTOR, "#plan-suggestions input[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "experiment_flops=2e18" in d.current_url)
    assert "2e+18 FLOPs" in driver.find_element(By.ID, "suggestion-summary").text
    assert driver.find_elements(By.CSS_SELECTOR, "#suggestion-runs tbody tr")
    assert console_errors(driver) == []
