"""Request ids (X-Request-ID in and out, in every log line) and the JSON log format."""

import json
import logging
import re
import sys

import pytest
from django.test import Client

from ops.logs import JsonFormatter, RequestIdFilter, request_id

pytestmark = pytest.mark.django_db


def test_an_incoming_request_id_is_echoed_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="bitscale.request"):
        response = Client().get("/no/such/page", HTTP_X_REQUEST_ID="trace-42.a")
    assert response["X-Request-ID"] == "trace-42.a"
    (record,) = [r for r in caplog.records if r.name == "bitscale.request"]
    assert (record.method, record.path, record.status) == ("GET", "/no/such/page", 404)
    assert record.duration_ms >= 0
    assert RequestIdFilter().filter(record)
    assert record.request_id == "-"  # the id is gone once the request is answered


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "new\nline"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    first = Client().get("/no/such/page", **headers)["X-Request-ID"]
    second = Client().get("/no/such/page", **headers)["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_log_lines_inside_a_request_carry_its_id():
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("bitscale.request")
    logger.addHandler(handler)
    try:
        Client().get("/no/such/page", HTTP_X_REQUEST_ID="abc123")
    finally:
        logger.removeHandler(handler)
    assert [record.request_id for record in handler_records] == ["abc123"]


def test_json_formatter_writes_one_object_per_record_with_extras_and_exception():
    token = request_id.set("rid-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(), extra={"status": 500}
            )
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    assert "\n" not in line  # one record, one line: the traceback's newlines are escaped
    entry = json.loads(line)
    assert entry["message"] == "failed here"
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "x"
    assert entry["request_id"] == "rid-1"
    assert entry["status"] == 500
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")
