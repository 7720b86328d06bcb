"""The page at /, where the links MLflow's client prints ("View run at http://host/#/experiments/...") lead."""

import pytest
from django.urls import reverse

RUN_ID = "0123456789abcdef0123456789abcdef"


def test_the_page_links_to_the_runs_and_the_api_docs(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for name in ("admin:runs_run_changelist", "admin:mlflow_compat_mlflowrun_changelist", "api-docs"):
        assert f'href="{reverse(name)}"' in page
    assert "mlflow_compat/home.js" in page  # reads the fragment the server never sees
    assert "<script>" not in page  # no inline script: the Content-Security-Policy forbids it


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"run": RUN_ID}},
        {"HTTP_REFERER": f"http://localhost:8000/experiments/2/runs/{RUN_ID}"},
    ],
)
def test_a_named_run_opens_in_the_admin(client, request_kwargs):
    response = client.get("/", **request_kwargs)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:mlflow_compat_mlflowrun_changelist')}?q={RUN_ID}"


def test_anything_else_named_is_ignored(client):
    assert client.get("/", {"run": "../admin"}).status_code == 200
    assert client.get("/", HTTP_REFERER="http://elsewhere/runs/x").status_code == 200


def test_the_link_mlflow_prints_opens_the_run_in_a_real_browser(browser, live_server, transactional_db):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_server.url}/#/experiments/2/runs/{RUN_ID}")  # as printed by MLflow's client
    WebDriverWait(browser, 30).until(lambda d: "/admin/" in d.current_url)
    # Not logged in: the admin's login, which then goes on to the run.
    assert "/admin/login/" in browser.current_url
    assert RUN_ID in browser.current_url
    assert "mlflow_compat/mlflowrun" in browser.current_url.replace("%2F", "/")
