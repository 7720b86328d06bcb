"""Bad input: a 4xx that names the field, and nothing written (docs/api.md, Conventions and Runs)."""

import json

import pytest

from runs.models import Evaluation, Run
from tests.factories import payload

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/runs/"

# (case id, body, the field the error must name)
BAD_RUNS = [
    ("missing n_params", payload(n_params=...), "n_params"),
    ("missing n_tokens", payload(n_tokens=...), "n_tokens"),
    ("finished without final_loss", payload(final_loss=...), "final_loss"),
    ("finished with null final_loss", payload(final_loss=None), "final_loss"),
    ("unknown field", payload(n_param=10), "n_param"),
    ("read-only id", payload(id=5), "id"),
    ("read-only created_at", payload(created_at="2024-01-01T00:00:00Z"), "created_at"),
    ("n_params as string", payload(n_params="1000"), "n_params"),
    ("n_params as bool", payload(n_params=True), "n_params"),
    ("n_params fractional", payload(n_params=1.5), "n_params"),
    ("n_params zero", payload(n_params=0), "n_params"),
    ("n_params negative", payload(n_params=-10), "n_params"),
    ("n_params above 1e14", payload(n_params=10**14 + 1), "n_params"),
    ("n_tokens zero", payload(n_tokens=0), "n_tokens"),
    ("n_tokens above 1e16", payload(n_tokens=10**16 + 1), "n_tokens"),
    ("n_tokens Infinity", payload(n_tokens=float("inf")), "n_tokens"),
    ("final_loss NaN", payload(final_loss=float("nan")), "final_loss"),
    ("final_loss Infinity", payload(final_loss=float("inf")), "final_loss"),
    ("final_loss zero", payload(final_loss=0), "final_loss"),
    ("final_loss negative", payload(final_loss=-1.0), "final_loss"),
    ("final_loss 100", payload(final_loss=100), "final_loss"),
    ("final_loss as string", payload(final_loss="3.2"), "final_loss"),
    ("weight_bits 0.5", payload(weight_bits=0.5), "weight_bits"),
    ("weight_bits 33", payload(weight_bits=33), "weight_bits"),
    ("weight_bits an integer past float's range", payload(weight_bits=10**400), "weight_bits"),
    ("activation_bits NaN", payload(activation_bits=float("nan")), "activation_bits"),
    ("kv_bits null", payload(kv_bits=None), "kv_bits"),
    ("number_format unknown", payload(number_format="bf16"), "number_format"),
    ("status unknown", payload(status="done"), "status"),
    ("param_count unknown", payload(param_count="all"), "param_count"),
    ("family not a slug", payload(family="my family!"), "family"),
    ("family too long", payload(family="f" * 101), "family"),
    ("name too long", payload(name="n" * 201), "name"),
    ("external_id too long", payload(external_id="x" * 201), "external_id"),
    ("external_id a number", payload(external_id=42), "external_id"),
    ("excluded without reason", payload(excluded=True), "exclusion_reason"),
    ("excluded as string", payload(excluded="false", exclusion_reason="x"), "excluded"),
    ("n_layers zero", payload(n_layers=0), "n_layers"),
    ("seq_len negative", payload(seq_len=-1), "seq_len"),
    ("exponent_bits without mantissa_bits", payload(number_format="fp", exponent_bits=4), "mantissa_bits"),
    ("mantissa_bits without exponent_bits", payload(number_format="fp", mantissa_bits=3), "exponent_bits"),
    ("exponent_bits null beside mantissa_bits", payload(exponent_bits=None, mantissa_bits=3), "exponent_bits"),
    (
        "exponent_bits on an int run",
        payload(weight_bits=8, number_format="int", exponent_bits=4, mantissa_bits=3),
        "exponent_bits",
    ),
    ("exponent_bits on a mixed run", payload(number_format="mixed", exponent_bits=4, mantissa_bits=3), "exponent_bits"),
    ("exponent_bits 0", payload(exponent_bits=0, mantissa_bits=3), "exponent_bits"),
    ("exponent_bits 9", payload(exponent_bits=9, mantissa_bits=3), "exponent_bits"),
    ("mantissa_bits -1", payload(exponent_bits=4, mantissa_bits=-1), "mantissa_bits"),
    ("mantissa_bits 24", payload(exponent_bits=4, mantissa_bits=24), "mantissa_bits"),
    ("exponent_bits as string", payload(exponent_bits="4", mantissa_bits=3), "exponent_bits"),
    ("exponent_bits fractional", payload(exponent_bits=4.5, mantissa_bits=3), "exponent_bits"),
    ("mantissa_bits as bool", payload(exponent_bits=4, mantissa_bits=True), "mantissa_bits"),
    ("exponent_bits as bool", payload(exponent_bits=True, mantissa_bits=3), "exponent_bits"),
    ("metadata a list", payload(metadata=[1, 2]), "metadata"),
    ("metadata over 64 KB", payload(metadata={"blob": "x" * 70_000}), "metadata"),
    ("evaluations not a list", payload(evaluations={"post_train_bits": 4}), "evaluations"),
    (
        "evaluation at weight_bits",
        payload(weight_bits=8, evaluations=[{"post_train_bits": 8, "loss": 3}]),
        "evaluations",
    ),
    ("evaluation above default 16 bits", payload(evaluations=[{"post_train_bits": 20, "loss": 3}]), "evaluations"),
    ("evaluation loss NaN", payload(evaluations=[{"post_train_bits": 4, "loss": float("nan")}]), "evaluations"),
    ("evaluation missing loss", payload(evaluations=[{"post_train_bits": 4}]), "evaluations"),
    ("evaluation unknown field", payload(evaluations=[{"post_train_bits": 4, "loss": 3, "bits": 4}]), "evaluations"),
    (
        "evaluation repeated",
        payload(evaluations=[{"post_train_bits": 4, "loss": 3}, {"post_train_bits": 4, "loss": 3.1}]),
        "evaluations",
    ),
    ("body a list", [payload()], "non_field_errors"),
]


def _encode(body):
    # allow_nan: the point is to send NaN/Infinity literals, which Python's json writes by default.
    return json.dumps(body, allow_nan=True)


def _snapshot():
    return (
        list(Run.objects.order_by("pk").values()),
        list(Evaluation.objects.order_by("pk").values()),
    )


@pytest.fixture
def existing_run(client_rw):
    """One stored run, so 'unchanged' also covers updates of existing data."""
    body = payload(external_id="existing", weight_bits=8, evaluations=[{"post_train_bits": 4, "loss": 3.5}])
    assert client_rw.post(RUNS, body, format="json").status_code == 201
    return body


@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=i) for i, b, f in BAD_RUNS])
def test_bad_run_is_400_naming_the_field_and_writes_nothing(client_rw, existing_run, body, field):
    before = _snapshot()

    response = client_rw.post(RUNS, _encode(body), content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert _snapshot() == before


@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=i) for i, b, f in BAD_RUNS if isinstance(b, dict)])
def test_bad_run_inside_a_bulk_names_its_index_and_writes_nothing(client_rw, existing_run, body, field):
    before = _snapshot()
    runs = [payload(external_id="fine-1"), {**existing_run, "final_loss": 2.5}, body]

    response = client_rw.post(RUNS + "bulk/", _encode({"runs": runs}), content_type="application/json")

    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["2"]
    assert field in response.json()["errors"]["2"]
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"n_params": 0}, "n_params"),
        ({"final_loss": None}, "final_loss"),
        ({"excluded": True}, "exclusion_reason"),
        ({"weight_bits": 4}, "weight_bits"),
        ({"exponent_bits": 4}, "mantissa_bits"),
        ({"exponent_bits": 4, "mantissa_bits": 3}, "exponent_bits"),  # the stored run is int (8-bit default)
        ({"mantissa_bits": 24}, "mantissa_bits"),
        ({"status": "finished", "colour": "red"}, "colour"),
        ({"id": 99}, "id"),
    ],
)
def test_bad_patch_is_400_naming_the_field_and_writes_nothing(client_rw, existing_run, patch, field):
    run = Run.objects.get(external_id="existing")
    before = _snapshot()

    response = client_rw.patch(f"{RUNS}{run.pk}/", patch, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"post_train_bits": 8, "loss": 3.0}, "post_train_bits"),
        ({"post_train_bits": 0, "loss": 3.0}, "post_train_bits"),
        ({"post_train_bits": 4, "loss": 0}, "loss"),
        ({"post_train_bits": 4, "loss": float("inf")}, "loss"),
        ({"post_train_bits": 4}, "loss"),
        ({"post_train_bits": 4, "loss": 3.0, "method": ""}, "method"),
        ({"post_train_bits": 4, "loss": 3.0, "method": "m" * 51}, "method"),
        ({"post_train_bits": 4, "loss": 3.0, "run": 1}, "run"),
    ],
)
def test_bad_evaluation_is_400_naming_the_field(client_rw, existing_run, body, field):
    run = Run.objects.get(external_id="existing")
    before = _snapshot()

    response = client_rw.post(f"{RUNS}{run.pk}/evaluations/", _encode(body), content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert _snapshot() == before


def test_malformed_json_is_400(client_rw, existing_run):
    before = _snapshot()
    response = client_rw.post(RUNS, '{"n_params": 10,', content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()["errors"]
    assert _snapshot() == before


def test_wrong_content_type_is_400_naming_it(client_rw, existing_run):
    before = _snapshot()
    response = client_rw.post(RUNS, "n_params=10&n_tokens=10", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "content_type" in response.json()["errors"]
    assert _snapshot() == before


def test_body_over_5_mb_is_413(client_rw, existing_run):
    before = _snapshot()
    body = json.dumps({"runs": [payload(metadata={"x": "y" * 60_000}) for _ in range(90)]})
    assert len(body) > 5 * 1024 * 1024

    response = client_rw.post(RUNS + "bulk/", body, content_type="application/json")

    assert response.status_code == 413
    assert "detail" in response.json()["errors"]
    assert _snapshot() == before


def test_bulk_envelope_errors_name_the_field(client_rw, existing_run):
    assert "runs" in client_rw.post(RUNS + "bulk/", {}, format="json").json()["errors"]
    assert "runs" in client_rw.post(RUNS + "bulk/", {"runs": []}, format="json").json()["errors"]
    assert "extra" in client_rw.post(RUNS + "bulk/", {"runs": [payload()], "extra": 1}, format="json").json()["errors"]
    assert client_rw.post(RUNS + "bulk/", {"runs": ["not an object"]}, format="json").json()["errors"]["0"]


def test_the_table_has_at_least_30_cases():
    assert len(BAD_RUNS) >= 30


@pytest.mark.parametrize("name", ["created_after", "trained_after", "trained_before"])
@pytest.mark.parametrize("value", ["1660-08-11T23:47:45.92+22:27", "2024-01-01T00:00:00-23:59"])
def test_a_time_filter_with_any_offset_python_reads_is_answered(client_rw, name, value):
    # PostgreSQL refuses offsets beyond +-15:59, which ISO 8601 and Python allow: the filter compares in UTC.
    response = client_rw.get("/api/v1/runs/", {name: value})
    assert response.status_code == 200, response.json()
