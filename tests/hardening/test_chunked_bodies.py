"""Bodies sent with `Transfer-Encoding: chunked`: read where the server decodes them, else 411; never empty.

The test client always sends a Content-Length, so these go through a real socket (live_server, Django's
threaded development server, which does not decode chunks) and through the WSGI handler with the environment a
chunk-decoding server (gunicorn) hands over.
"""

import http.client
import io
import json
from urllib.parse import urlsplit

import pytest
from django.core.handlers.wsgi import WSGIHandler

from runs.models import Run
from runs.services import api_key_create
from tests.factories import payload

pytestmark = pytest.mark.django_db(transaction=True)


def _chunked(body: bytes, size: int = 7) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_a_chunked_body_to_a_server_that_cannot_decode_it_is_411_and_writes_nothing(live_server, team):
    _, secret = api_key_create(team=team)
    url = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/api/v1/runs/")
    conn.putheader("Authorization", f"Bearer {secret}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(_chunked(json.dumps(payload()).encode()))
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 411, body
    assert "Content-Length" in body["errors"]["detail"][0]
    assert Run.objects.count() == 0


def test_the_same_body_with_a_content_length_through_the_socket_is_created(live_server, team):
    _, secret = api_key_create(team=team)
    url = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    raw = json.dumps(payload()).encode()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    conn.request("POST", "/api/v1/runs/", body=raw, headers=headers)
    assert conn.getresponse().status == 201
    conn.close()


def _wsgi_post(secret: str, body: bytes, **environ: object) -> tuple[str, dict]:
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/runs/",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {secret}",
        "HTTP_TRANSFER_ENCODING": "chunked",
        **environ,
    }
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    content = b"".join(WSGIHandler()(base, start_response))
    return seen["status"], json.loads(content)


def test_a_body_the_server_decoded_from_chunks_is_read(team):
    # gunicorn decodes the chunks and says so with wsgi.input_terminated; the stream ends with the body.
    _, secret = api_key_create(team=team)
    status, body = _wsgi_post(
        secret, json.dumps(payload(external_id="chunked")).encode(), **{"wsgi.input_terminated": True}
    )
    assert status.startswith("201"), body
    assert Run.objects.get().external_id == "chunked"


def test_a_decoded_chunked_body_over_the_limit_is_413(team, settings):
    _, secret = api_key_create(team=team)
    big = b" " * (settings.REQUEST_BODY_MAX_BYTES + 10)
    status, body = _wsgi_post(secret, big, **{"wsgi.input_terminated": True})
    assert status.startswith("413"), body
