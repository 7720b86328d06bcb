"""Contract edges of issue 27: a wildcard content type is not JSON, a transfer coding Django cannot decode is
refused, a cursor that is not one the API wrote is a 400 (never the first page), /healthz's 503 says when to
retry, and a body that ends early is a 400."""

import io
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import OperationalError
from django.test import Client

from runs.models import Run
from runs.services import api_key_create
from tests.factories import RunFactory, payload

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/runs/"


@pytest.mark.parametrize("content_type", ["*/*", "application/*", "*/json", "*/*; charset=utf-8"])
def test_a_wildcard_content_type_is_not_json(client_rw, content_type):
    response = client_rw.post(RUNS, json.dumps(payload()), content_type=content_type)
    assert response.status_code == 400, response.content
    assert "content_type" in response.json()["errors"]
    assert Run.objects.count() == 0


def test_json_with_a_charset_is_still_json(client_rw):
    response = client_rw.post(RUNS, json.dumps(payload()), content_type="application/json; charset=utf-8")
    assert response.status_code == 201, response.content


def test_mlflow_refuses_a_wildcard_content_type_in_its_own_shape(client_rw):
    response = client_rw.post("/api/2.0/mlflow/experiments/create", '{"name": "x"}', content_type="*/*")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "query",
    [
        "cursor=!!!!",  # no base64 character at all: DRF decoded it as an empty cursor, the first page
        "cursor=eD0x",  # x=1: not a key of a cursor
        "cursor=bz0xJm89Mg==",  # o=1&o=2
        "ordering=final_loss&cursor=cD1OYU4=",  # p=NaN on a float ordering: PostgreSQL's NaN is above every number
        "ordering=-final_loss&cursor=cD1pbmY=",  # p=inf
        "ordering=final_loss&cursor=cD0tSW5maW5pdHk=",  # p=-Infinity
    ],
)
def test_a_cursor_the_api_did_not_write_is_400_never_the_first_page(client_rw, team, query):
    RunFactory.create_batch(3, team=team)
    response = client_rw.get(f"{RUNS}?{query}")
    assert response.status_code == 400, response.content
    assert "Invalid cursor" in response.json()["errors"]["cursor"][0]


def test_a_float_ordering_still_pages_with_its_own_cursors(client_rw, team):
    for loss in (2.5, 3.0, 3.0, 3.5, 4.25):
        RunFactory.create(team=team, final_loss=loss)
    seen = []
    url = f"{RUNS}?ordering=final_loss&page_size=2"
    while url:
        page = client_rw.get(url).json()
        seen += [run["final_loss"] for run in page["results"]]
        url = page["next"]
    assert seen == [2.5, 3.0, 3.0, 3.5, 4.25]


def test_healthz_503_says_when_to_retry(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr("ops.health.connection.cursor", refuse)
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["database"] == "unavailable"


def _wsgi_post(secret: str, body: bytes, **environ: object) -> tuple[str, dict]:
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": RUNS,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.input_terminated": True,
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {secret}",
        **environ,
    }
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    content = b"".join(WSGIHandler()(base, start_response))
    return seen["status"], json.loads(content)


# Through Django's WSGI handler, which closes the connection at the end of the request: not in a test transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate,chunked", "identity", "chunked, chunked", "br"])
def test_a_transfer_coding_other_than_chunked_is_400_naming_it(team, coding):
    _, secret = api_key_create(team=team)
    status, body = _wsgi_post(secret, json.dumps(payload()).encode(), HTTP_TRANSFER_ENCODING=coding)
    assert status.startswith("400"), body
    assert "transfer_encoding" in body["errors"]
    assert Run.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_body_shorter_than_its_content_length_is_400(team):
    _, secret = api_key_create(team=team)
    raw = json.dumps(payload()).encode()
    status, body = _wsgi_post(secret, raw, CONTENT_LENGTH=str(len(raw) + 50))
    assert status.startswith("400"), body
    assert "ended after" in body["errors"]["detail"][0]
    assert Run.objects.count() == 0
