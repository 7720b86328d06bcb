"""Refusals made before an MLflow view runs, in MLflow's shape.

The body limit (413), a chunked body the server cannot end (411), a database lost outside a view (503) and a
server error answer in Bitscale's shape `{"errors": {...}}` everywhere. On MLflow's paths the client reads
`error_code`, so the same refusals are rewritten there as {"error_code": ..., "message": ...}, keeping the status
and the headers (Retry-After). Responses of the MLflow views are already in MLflow's shape and pass unchanged.
"""

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from mlflow_compat import errors

MLFLOW_PATH_PREFIXES = ("/api/2.0/", "/api/3.0/")

# The code MLflow's client acts on for each refusal status; any other 4xx is a bad parameter.
CODE_FOR_STATUS = {
    401: errors.UNAUTHENTICATED,
    403: errors.PERMISSION_DENIED,
    404: errors.ENDPOINT_NOT_FOUND,
    429: errors.REQUEST_LIMIT_EXCEEDED,
    503: errors.TEMPORARILY_UNAVAILABLE,
}


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_message(value)}" if key != "detail" else _message(value) for key, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def mlflow_shaped(response: HttpResponse) -> HttpResponse:
    """`response` with MLflow's error body when it is a refusal in Bitscale's shape; unchanged otherwise."""
    if response.status_code < 400 or response.get("Content-Type", "").split(";")[0] != "application/json":
        return response
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return response
    if not isinstance(body, dict) or "errors" not in body or "error_code" in body:
        return response
    status = response.status_code
    code = CODE_FOR_STATUS.get(status, errors.INTERNAL_ERROR if status >= 500 else errors.INVALID_PARAMETER_VALUE)
    response.content = json.dumps({"error_code": code, "message": _message(body["errors"])}).encode()
    response["Content-Length"] = str(len(response.content))
    return response


class MlflowErrorShapeMiddleware:
    """Placed before the middleware that refuses bodies and turns database errors into 503s, so it sees theirs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(MLFLOW_PATH_PREFIXES):
            return mlflow_shaped(response)
        return response
