"""The page at /: where the links MLflow's client prints lead.

MLflow's client prints "View run at http://host/#/experiments/<id>/runs/<run id>" for MLflow's own web UI; the
part after `#` never reaches the server, so the browser asks for `/`. The page links to the admin's lists of
runs and MLflow runs and to the API docs; its script (static, as the Content-Security-Policy allows) reads the
fragment and, when it names a run, asks for `/?run=<run id>`, which redirects to that run in the admin's list of
MLflow runs (searched by its exact id, so the admin's own team scoping decides what a user sees; nothing is
read here). A Referer naming a run does the same. The page needs no login; the admin pages it links to do.
"""

import re
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse

RUN_ID = re.compile(r"[0-9a-f]{32}")
RUN_IN_URL = re.compile(r"/runs/([0-9a-f]{32})(?:[/?#]|$)")


def _named_run(request: HttpRequest) -> str | None:
    run_id = request.GET.get("run", "")
    if RUN_ID.fullmatch(run_id):
        return run_id
    found = RUN_IN_URL.search(request.META.get("HTTP_REFERER", ""))
    return found[1] if found else None


def home(request: HttpRequest) -> HttpResponse:
    run_id = _named_run(request)
    if run_id is not None:
        return redirect(f"{reverse('admin:mlflow_compat_mlflowrun_changelist')}?{urlencode({'q': run_id})}")
    links = [
        ("Runs", reverse("admin:runs_run_changelist"), "every team's runs you may see, with fits and plots"),
        ("MLflow runs", reverse("admin:mlflow_compat_mlflowrun_changelist"), "runs logged with MLflow's client"),
        ("Fits", reverse("admin:fits_fit_changelist"), "the laws fitted to each family"),
        ("API docs", reverse("api-docs"), "the REST API (OpenAPI)"),
    ]
    return render(request, "mlflow_compat/home.html", {"links": links})


urlpatterns = [path("", home, name="home")]
