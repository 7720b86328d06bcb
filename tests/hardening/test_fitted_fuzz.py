"""Schemathesis against the planner's operations on a family with succeeded fits of all three laws.

The schema fuzzing in tests/api runs without fitted families, so predictions, plans and suggestions only ever
answer 404/409 there. Here a hook pins the family of every planner request to one with chinchilla, precision
and fp fits (fitted by the engine, tests/hardening/fitted.py) and every path id to a real row of the team, so
the generated sizes, bits, formats, budgets and constraints reach the laws and the search. Derandomized and
bounded (FUZZ_MAX_EXAMPLES per operation); every response: no 5xx, conforming to the schema, and no row
written by a refused request.
"""

import os
import zlib
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from fits.models import Fit, FitScope
from planner.allocation import HARDWARE_PROFILES
from planner.models import Plan
from planner.services import plan_create
from runs.models import Evaluation, Run, Team
from runs.services import api_key_create
from tests.factories import RunFactory, plan_request
from tests.hardening.fitted import FAMILY, store_fitted_family

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))  # per operation; CI keeps the default
PLANNER_PATHS = r"^/api/v1/(predict|plans|suggestions|fits)/"
HARDWARE = sorted(HARDWARE_PROFILES)
PINNED: dict[str, list[int]] = {}  # path kind -> ids of the current test's rows, filled by the fixture
STATUSES: Counter[int] = Counter()  # status codes answered, printed for the record (docs/benchmarks.md)


@pytest.fixture(scope="module", autouse=True)
def _report_statuses():
    yield
    if os.environ.get("FUZZ_MAX_EXAMPLES"):
        print(f"\nfitted fuzz: {sum(STATUSES.values())} cases, status codes {dict(sorted(STATUSES.items()))}")


@pytest.fixture
def api_schema(db):
    # Requests go straight to the WSGI app inside the test's transaction (as tests/api/test_schema_fuzz.py).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex=PLANNER_PATHS)


@pytest.fixture
def fitted_bearer(db):
    team = Team.objects.create(slug="fitted-fuzz", name="Fitted fuzz")
    fits = store_fitted_family(team)
    plans = [
        plan_create(team=team, request=plan_request(family=FAMILY, law=law, budget={"flops": 1e21}))
        for law in ("precision", "fp")
    ]
    PINNED.update(
        fits=[f.pk for f in fits.values()],
        plans=[p.pk for p in plans],
        runs=[RunFactory.create(team=team).pk for _ in range(2)],
    )
    _, secret = api_key_create(team=team)
    yield {"Authorization": f"Bearer {secret}"}
    PINNED.clear()


def _pick(choices: list[Any], seed: Any) -> Any:
    return choices[zlib.crc32(repr(seed).encode()) % len(choices)]


def _positive(container: Any, keys: tuple[str, ...]) -> None:
    """Fields that must be above 0 (the schema says only "number"): a generated 0 or negative value becomes a
    positive one (the smallest double, a middling or a huge value), so such cases reach the search rather than
    the field check."""
    if not isinstance(container, dict):
        return
    for key in keys:
        value = container.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            container[key] = _pick([5e-324, 0.5, 1e21, abs(value) or 1.0], (key, value, sorted(container)))


def _budget_shape(budget: Any) -> None:
    """What the schema cannot say about a budget: exactly one of flops and gpu_hours, and a known hardware
    name. The values themselves stay as generated (tiny, huge)."""
    if not isinstance(budget, dict):
        return
    _positive(budget, ("flops", "gpu_hours", "mfu"))
    if "flops" in budget and "gpu_hours" in budget:
        del budget["gpu_hours" if zlib.crc32(repr(budget).encode()) % 2 else "flops"]
    if "hardware" in budget:
        budget["hardware"] = _pick(HARDWARE, budget["hardware"])
    if "flops" in budget:
        budget.pop("mfu", None)


def pin_to_fitted_family(context: Any, case: Any) -> Any:
    """Every planner request names the fitted family; every {id} is one of the team's rows of that kind;
    budgets have the shape the schema cannot express (so generated values reach the search)."""
    for container in (case.query, case.body):
        if isinstance(container, dict) and "family" in container:
            container["family"] = FAMILY
    if isinstance(case.body, dict):
        _budget_shape(case.body.get("budget"))
        _budget_shape(case.body.get("experiment_budget"))
        _positive(case.body.get("constraints"), ("weights_memory_max_bytes",))
    _positive(case.query, ("post_train_bits",))
    if isinstance(case.path_parameters, dict) and "id" in case.path_parameters:
        kind = case.operation.path.split("/")[3]  # /api/v1/<kind>/{id}/
        if PINNED.get(kind):
            case.path_parameters["id"] = _pick(PINNED[kind], case.path_parameters["id"])
    return case


@GLOBAL_HOOK_DISPATCHER.apply(pin_to_fitted_family, name="map_case")
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_planner_on_fitted_laws_conforms_and_never_fails(case, fitted_bearer):
    # As in tests/api: the two checks about choosing 2xx vs 4xx for data the schema cannot express are off;
    # every other default check runs (no 5xx, status codes, content types, response schemas).
    pin_to_fitted_family(None, case)  # cases schemathesis builds outside the hooked generation too
    before = _row_counts()
    response = case.call_and_validate(
        headers=fitted_bearer, excluded_checks=[negative_data_rejection, positive_data_acceptance]
    )
    STATUSES[response.status_code] += 1
    if response.status_code >= 400:  # a refused request writes nothing
        assert _row_counts() == before, (case.operation.method, case.operation.path, response.status_code)


def _row_counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Run, Evaluation, Fit, FitScope, Plan))
