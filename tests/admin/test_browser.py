"""A real browser through the admin: log in, runs, fits, a fit with plots, a plan with its next runs and the MLflow
runs, at 1400 and 2200 px; no console errors, and no list scrolls sideways at 1400 px (both sidebars open)."""

from pathlib import Path

import pytest

from mlflow_compat.models import Experiment, MlflowRun
from tests.browser import console_errors
from tests.factories import PASSWORD, staff_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WIDTHS = (1400, 2200)


def _shot(driver, name: str, width: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(width, min(max(height, 800), 6000))
    driver.save_screenshot(str(ARTIFACTS / f"admin-{name}-{width}.png"))
    driver.set_window_size(width, 1000)


def _scrolls_sideways(driver) -> bool:
    """Whether the page or the list's table is wider than what shows."""
    return bool(
        driver.execute_script(
            "const r = document.querySelector('.results');"
            "return document.documentElement.scrollWidth > window.innerWidth"
            " || (r !== null && r.scrollWidth > r.clientWidth);"
        )
    )


@pytest.mark.browser
def test_review_in_a_real_browser(browser, live_server, transactional_db, alpha, alpha_fits, alpha_runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    staff_user("ada", team=alpha, role="member")
    experiment = Experiment.objects.create(team=alpha, name="kumar-sweep")
    MlflowRun.objects.bulk_create(
        MlflowRun(
            team=alpha,
            experiment=experiment,
            run_id=f"{i:032x}",
            run_name=f"110m-int8-seed{i}",
            bitscale_run=run,
            status="FINISHED",
            start_time=1796393071015 + i * 60_000,
            history_points=1000,
            mapping_error="" if i else "param n_params: cannot read 'lots' as a number " * 3,
        )
        for i, run in enumerate(alpha_runs[:30])
    )
    driver = browser

    # given: logged in through the login form
    driver.get(f"{live_server.url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("ada")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "/admin/login/" not in d.current_url)  # the POST's redirect
    assert "Log in" not in driver.title

    v2 = alpha_fits[1]
    lists = {
        "runs": "/admin/runs/run/?weight_bits=4.0",
        "fits": "/admin/fits/fit/",
        "mlflow": "/admin/mlflow_compat/mlflowrun/",
    }
    for width in WIDTHS:
        driver.set_window_size(width, 1000)
        for name, path in lists.items():
            driver.get(f"{live_server.url}{path}")
            assert driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"), name
            assert not _scrolls_sideways(driver), f"{name} scrolls sideways at {width} px"
            _shot(driver, name, width)
            assert console_errors(driver) == []

        # the fit page: the verdict, six plots (each an image of its own) and the diff
        driver.get(f"{live_server.url}/admin/fits/fit/{v2.pk}/change/")
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('figure.fit-plot img')].every(i => i.complete)"
            )
        )
        plots = driver.find_elements(By.CSS_SELECTOR, "figure.fit-plot img")
        assert len(plots) == 6
        assert all(plot.size["width"] > 200 and plot.size["height"] > 100 for plot in plots)
        assert all(driver.execute_script("return arguments[0].naturalWidth", plot) > 0 for plot in plots)
        assert "Since version 1" in driver.find_element(By.CSS_SELECTOR, ".fit-diff").text
        assert "succeeded" in driver.find_element(By.CSS_SELECTOR, ".fit-verdict").text
        assert not _scrolls_sideways(driver)
        _shot(driver, "fit", width)
        assert console_errors(driver) == []

    # the plan form, submitted (the only family of the member's team is chosen already)
    driver.set_window_size(1400, 1000)
    driver.get(f"{live_server.url}/admin/planner/plan/add/")
    assert "kumar" in driver.find_element(By.NAME, "family").text
    driver.find_element(By.NAME, "flops").send_keys("1e21")
    driver.find_element(By.NAME, "constraints").send_keys('{"post_train_bits": 4}')
    _shot(driver, "plan-form", 1400)
    driver.find_element(By.NAME, "_plan").click()
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".errorlist, .errornote")]
    assert driver.find_elements(By.ID, "plan-comparison"), errors
    assert driver.find_elements(By.CSS_SELECTOR, "#plot-plan-contour svg")
    assert driver.find_elements(By.CSS_SELECTOR, "#suggestion-runs tbody tr")
    plan_url = driver.current_url
    for width in WIDTHS:
        driver.set_window_size(width, 1000)
        driver.get(plan_url)
        assert not _scrolls_sideways(driver)
        _shot(driver, "plan", width)
        assert console_errors(driver) == []

    # next-run suggestions for another experiment budget: the GET form sits outside the admin's POST form
    driver.find_element(By.ID, "id_experiment_flops").send_keys("2e18")
    driver.find_element(By.CSS_SELECTOR, "#plan-suggestions input[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "experiment_flops=2e18" in d.current_url)
    assert "2e18 FLOPs" in driver.find_element(By.ID, "suggestion-summary").text
    assert driver.find_elements(By.CSS_SELECTOR, "#suggestion-runs tbody tr")
    assert console_errors(driver) == []

    # the plan list
    driver.get(f"{live_server.url}/admin/planner/plan/")
    assert not _scrolls_sideways(driver)
    _shot(driver, "plans", 2200)
