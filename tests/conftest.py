"""Shared fixtures: two teams, API clients holding read-write and read-only keys, and a Kumar-style sweep with
its precision fit."""

import os
import shutil

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from fits.laws import FitResult, Observations, fit_law, kumar_synthetic
from runs.models import Team
from runs.services import api_key_create
from tests.factories import N_BOOTSTRAP, TeamFactory


def _client(team: Team, *, read_only: bool = False) -> APIClient:
    _, secret = api_key_create(team=team, read_only=read_only, label="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture(autouse=True)
def _empty_cache():
    """Every test starts with an empty cache: plots are cached by fit id, and ids repeat after a rollback."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def team(db: None) -> Team:
    return TeamFactory.create(slug="alpha")


@pytest.fixture
def other_team(db: None) -> Team:
    return TeamFactory.create(slug="beta")


@pytest.fixture
def client_rw(team: Team) -> APIClient:
    return _client(team)


@pytest.fixture
def client_ro(team: Team) -> APIClient:
    return _client(team, read_only=True)


@pytest.fixture
def other_client(other_team: Team) -> APIClient:
    return _client(other_team)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def kumar_data() -> Observations:
    noisy, _ = kumar_synthetic(seed=3)
    return noisy


@pytest.fixture(scope="session")
def kumar_fit(kumar_data: Observations) -> FitResult:
    return fit_law("precision", kumar_data, n_bootstrap=N_BOOTSTRAP, seed=1)


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A redis-server of the test session's own (tests/redis_server.py); stop and start it to simulate an outage,
    and leave it running when the test ends."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
