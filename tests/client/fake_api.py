"""An in-memory stand-in for the runs API behind httpx.MockTransport, with failures on demand."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Failure = Callable[[httpx.Request], httpx.Response | None]

URL = "http://bitscale.test"  # where the clients of the tests find the fake API
RUN = {"family": "sweep", "n_params": 1_000_000, "n_tokens": 20_000_000, "weight_bits": 8, "final_loss": 3.5}


@dataclass
class FakeApi:
    """Stores runs by external_id like the server does; `failures` are consulted first, one per request."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    failures: list[Failure | None] = field(default_factory=list)
    creates: int = 0
    responses: dict[str, Any] = field(default_factory=dict)  # path -> (status, body) for fits, plans, ...

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def posted(self, path: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST" and r.url.path == path]

    def fail_next(self, *failures: Failure | None) -> None:
        self.failures.extend(failures)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            answer = failure(request) if failure is not None else None
            if answer is not None:
                return answer
        path = request.url.path
        if path in self.responses:
            status, body = self.responses[path]
            return httpx.Response(status, json=body)
        if path == "/api/v1/runs/" and request.method == "POST":
            run, created = self._upsert(json.loads(request.content))
            return httpx.Response(201 if created else 200, json=run)
        if path == "/api/v1/runs/bulk/":
            items = json.loads(request.content)["runs"]
            errors = {
                str(i): {"n_params": ["This field is required."]}
                for i, item in enumerate(items)
                if "n_params" not in item
            }
            if errors:
                return httpx.Response(400, json={"errors": errors})
            results = [self._upsert(item) for item in items]
            n_created = sum(1 for _, was_created in results if was_created)
            ids = [run["id"] for run, _ in results]
            return httpx.Response(200, json={"created": n_created, "updated": len(items) - n_created, "ids": ids})
        return httpx.Response(404, json={"errors": {"detail": ["Not found."]}})

    def _upsert(self, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = item["external_id"]
        created = key not in self.runs
        if created:
            self.creates += 1
            self.runs[key] = {"id": len(self.runs) + 1, "family": "default", "status": "finished"}
        self.runs[key].update(item)
        return self.runs[key], created


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Failure:
    """A failure answering `code`."""
    return lambda request: httpx.Response(code, headers=headers, json=body if body is not None else {})


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def down(times: int) -> list[Failure | None]:
    return [refuse_connection] * times
