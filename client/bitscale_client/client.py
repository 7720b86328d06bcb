"""`Client`: log runs and evaluations, read fits, predict and plan, over the Bitscale HTTP API."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from bitscale_client.errors import BitscaleError, ServerUnavailable, ValidationFailed
from bitscale_client.models import BulkResult, Evaluation, Fit, Plan, Prediction, Run, Spooled, SyncResult
from bitscale_client.spool import Spool, SpoolEntry, default_spool_path
from bitscale_client.transport import RetryPolicy, send

__version__ = "0.1.0"
BATCH_SIZE = 1000  # the bulk endpoint's limit
PAGE_SIZE = 1000
Progress = Callable[[int, int], None]  # (done, total)


def new_external_id() -> str:
    """An idempotency key for a run the caller did not name; fixed before the first attempt, kept across retries."""
    return f"bsc-{uuid.uuid4().hex}"


def iso_time(value: datetime | date | str) -> str:
    """A time as the API reads it (ISO 8601): an aware datetime in UTC with a Z, a naive one taken as the local
    time (what `datetime.now()` gives a training script), a date as midnight; a string is sent as it is."""
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    return value


def _with_external_id(fields: Mapping[str, Any]) -> dict[str, Any]:
    payload = dict(fields)
    if not payload.get("external_id"):
        payload["external_id"] = new_external_id()
    if isinstance(payload.get("trained_at"), date):  # datetime too: JSON has no time type
        payload["trained_at"] = iso_time(payload["trained_at"])
    return payload


def _query(filters: Mapping[str, Any]) -> dict[str, str]:
    """Filters as query parameters: booleans as true/false, None dropped."""
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, date):
            params[name] = iso_time(value)
        else:
            params[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return params


def _offset_errors(errors: dict[str, Any], offset: int) -> dict[str, Any]:
    """Batch errors are keyed by position in the batch; re-key them by position in the caller's input."""
    return {str(int(key) + offset) if key.isdigit() else key: value for key, value in errors.items()}


class Client:
    """A Bitscale API client for one server and one API key.

    >>> client = Client("https://bitscale.example.org", "bsk_...")
    >>> run = client.log_run(family="gpt-sweep", n_params=125_000_000, n_tokens=2_500_000_000,
    ...                      weight_bits=8, final_loss=3.12)

    Requests are retried on connection errors, 5xx and 429 (honouring Retry-After), at most
    `max_retries` times with exponential backoff and jitter. Runs are posted with an `external_id`
    (one is generated when the caller gives none), so a retry updates the run the first attempt made
    instead of making a second one. When the server stays unreachable, `log_run` and `log_runs` save
    the payloads to the spool (`spool_path`, default `~/.cache/bitscale/spool.jsonl`) and say so in
    their result; `sync()` uploads them later. `spool=False` raises `ServerUnavailable` instead.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        spool_path: Path | str | None = None,
        spool: bool = True,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        if not url:
            raise BitscaleError("no server URL: pass url= or set BITSCALE_URL")
        self.url = url.rstrip("/")
        self.api_base = self.url + "/api/v1/"
        self.policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max)
        self.spool: Spool | None = Spool(spool_path or default_spool_path()) if spool else None
        self._rng = random.Random(seed)
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"bitscale-client/{__version__}",
            },
        )

    # Plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.api_base + path.lstrip("/")

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = send(self._http, method, self._url(path), policy=self.policy, rng=self._rng, **kwargs)
        return response.json() if response.content else None

    # Runs -------------------------------------------------------------------------------

    def log_run(self, **fields: Any) -> Run | Spooled:
        """Create a run, or update the team's run with the same `external_id`.

        Calling again with the same `external_id` updates that run, so name each run with one. Without it, a
        new id is made per call: this call's retries never duplicate the run, but a second call stores a
        second run.

        Fields are the contract's (`n_params`, `n_tokens`, `final_loss`, `weight_bits`, `evaluations`, ...).
        `trained_at` (when training finished; default: now, when the server registers the run) may be a
        `datetime` (a naive one is local time), a `date` or an ISO 8601 string.
        Returns the stored `Run`, or `Spooled` when the server stayed unreachable and the run was saved
        locally for `sync()`. Raises `ValidationFailed` (with the server's field errors) on a 400.
        """
        payload = _with_external_id(fields)
        try:
            return Run.from_json(self._request("POST", "runs/", json=payload))
        except ServerUnavailable:
            if self.spool is None:
                raise
            self.spool.append([payload], url=self.url)
            return Spooled(path=self.spool.path, external_ids=[payload["external_id"]])

    def log_evaluation(self, run_id: int, post_train_bits: float, loss: float, method: str = "rtn") -> Evaluation:
        """Add a post-training quantization result to a run; the same (bits, method) again replaces its loss."""
        body = {"post_train_bits": post_train_bits, "loss": loss, "method": method}
        return Evaluation.from_json(self._request("POST", f"runs/{int(run_id)}/evaluations/", json=body))

    def log_runs(
        self, runs: Iterable[Mapping[str, Any]], *, batch_size: int = BATCH_SIZE, progress: Progress | None = None
    ) -> BulkResult:
        """Create or update many runs through the bulk endpoint, `batch_size` (at most 1000) at a time.

        Each batch is all or nothing on the server; batches before a failing one stay written. A 400
        raises `ValidationFailed` whose `errors` are keyed by position in `runs` and whose `result`
        says what earlier batches wrote. When the server stays unreachable, this batch and the rest are
        spooled, and `result.spooled` says so.
        """
        if not 1 <= batch_size <= BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {BATCH_SIZE}")
        payloads = [_with_external_id(run) for run in runs]
        result = BulkResult()
        for start in range(0, len(payloads), batch_size):
            batch = payloads[start : start + batch_size]
            try:
                answer = self._request("POST", "runs/bulk/", json={"runs": batch})
            except ValidationFailed as exc:
                message = f"runs {start}..{start + len(batch) - 1} were refused; {result.sent} earlier runs were saved"
                failure = ValidationFailed(message, status=400, errors=_offset_errors(exc.errors, start))
                failure.result = result
                raise failure from exc
            except ServerUnavailable:
                if self.spool is None:
                    raise
                rest = payloads[start:]
                self.spool.append(rest, url=self.url)
                result.spooled = Spooled(path=self.spool.path, external_ids=[p["external_id"] for p in rest])
                return result
            result.created += answer["created"]
            result.updated += answer["updated"]
            result.ids.extend(answer["ids"])
            if progress is not None:
                progress(start + len(batch), len(payloads))
        return result

    def get_run(self, run_id: int) -> Run:
        return Run.from_json(self._request("GET", f"runs/{int(run_id)}/"))

    def list_runs(self, *, page_size: int = PAGE_SIZE, **filters: Any) -> Iterator[Run]:
        """Every run matching the filters (`family`, `status`, `n_params__gte`, `ordering`, ...), page by page."""
        page: Any = self._request("GET", "runs/", params={**_query(filters), "page_size": str(page_size)})
        while True:
            for item in page["results"]:
                yield Run.from_json(item)
            if not page.get("next"):
                return
            page = self._request("GET", page["next"])

    def export_csv(self, path: Path | str | BinaryIO, **filters: Any) -> int:
        """Stream the team's runs as CSV (one row per run and evaluation) to a file; returns the bytes written."""
        response = send(
            self._http,
            "GET",
            self._url("runs/export.csv"),
            policy=self.policy,
            rng=self._rng,
            stream=True,
            params=_query(filters),
            headers={"Accept": "text/csv, */*;q=0.5"},  # the no-slash export route only negotiates JSON
        )
        written = 0
        try:
            if isinstance(path, str | Path):
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes():
                        written += out.write(chunk)
            else:
                for chunk in response.iter_bytes():
                    written += path.write(chunk)
        finally:
            response.close()
        return written

    # Spool ------------------------------------------------------------------------------

    def sync(self, *, batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> SyncResult:
        """Upload the runs spooled for this server, removing each batch from the spool once acknowledged.

        Exactly once: a run leaves the spool only after the server acknowledged it, and every spooled
        run has an external_id, so a crash between the acknowledgement and the removal only means the
        next sync re-posts it, which updates the same run instead of making a second one. Entries
        spooled for another server URL are left alone. A batch the server refuses (400) is moved to
        `<spool>.rejected.jsonl` with its errors; the rest of that batch is retried without it.
        Raises `ServerUnavailable` if the server is still down (what was acknowledged so far is removed).
        """
        result = SyncResult()
        if self.spool is None:
            return result
        pending = [entry for entry in self.spool.entries() if entry.url == self.url]
        total = len(pending)
        done = 0
        while pending:
            batch, pending = pending[:batch_size], pending[batch_size:]
            acked = self._sync_batch(batch, result)
            self.spool.remove(entry.id for entry in acked)
            result.uploaded += len(acked)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        result.remaining = len(self.spool.entries())
        result.rejected_path = self.spool.rejected_path if result.rejected else None
        return result

    def _sync_batch(self, batch: list[SpoolEntry], result: SyncResult) -> list[SpoolEntry]:
        assert self.spool is not None
        while batch:
            try:
                answer = self._request("POST", "runs/bulk/", json={"runs": [entry.payload for entry in batch]})
            except ValidationFailed as exc:
                refused_at = {int(key) for key in exc.errors if key.isdigit()}
                if not refused_at:  # the envelope itself was refused: set the whole batch aside
                    refused_at = set(range(len(batch)))
                refused = [entry for position, entry in enumerate(batch) if position in refused_at]
                by_entry = {entry.id: exc.errors.get(str(position), exc.errors) for position, entry in enumerate(batch)}
                self.spool.reject(refused, by_entry)
                result.rejected += len(refused)
                result.errors.update({entry.payload["external_id"]: by_entry[entry.id] for entry in refused})
                batch = [entry for position, entry in enumerate(batch) if position not in refused_at]
                continue
            result.created += answer["created"]
            result.updated += answer["updated"]
            return batch
        return []

    # Fits, predictions, plans -----------------------------------------------------------

    def current_fit(self, family: str, law: str = "precision") -> Fit:
        """The newest succeeded fit of `law` for `family`; raises `NotFound` when there is none yet."""
        return Fit.from_json(self._request("GET", "fits/current/", params={"family": family, "law": law}))

    def request_fit(self, family: str, law: str = "precision") -> Fit:
        """Ask for a refit now; returns the queued fit."""
        return Fit.from_json(self._request("POST", "fits/", json={"family": family, "law": law}))

    def predict(
        self,
        family: str,
        *,
        n_params: float,
        n_tokens: float,
        law: str = "precision",
        weight_bits: float | None = None,
        activation_bits: float | None = None,
        kv_bits: float | None = None,
        post_train_bits: float | None = None,
    ) -> Prediction:
        """The current fit's predicted loss (and 95% interval) for one configuration."""
        params = _query(
            {
                "family": family,
                "law": law,
                "n_params": int(n_params),
                "n_tokens": int(n_tokens),
                "weight_bits": weight_bits,
                "activation_bits": activation_bits,
                "kv_bits": kv_bits,
                "post_train_bits": post_train_bits,
            }
        )
        return Prediction.from_json(self._request("GET", "predict/", params=params))

    def plan(
        self,
        family: str,
        *,
        flops: float | None = None,
        gpu_hours: float | None = None,
        hardware: str | None = None,
        law: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        cost_model: str | None = None,
        **constraint_fields: Any,
    ) -> Plan:
        """Plan a training run for a budget of `flops` (6*N*D at 16 bits) or `gpu_hours` on `hardware`.

        `law` left out takes the server's default, `"auto"`: the family's best-ranked law that can serve
        the request (see `law_ranking`); the plan's `law` and `raw["law_selection"]` say which and why.
        Constraints (`post_train_bits`, `n_params_max`, `bits_choices`, ...) may be passed as keywords
        or as `constraints=`. Raises `Conflict` when the family has no succeeded fit of `law` (of any law,
        for auto) yet.
        """
        if (flops is None) == (gpu_hours is None):
            raise ValueError("give exactly one budget: flops= or gpu_hours= (with hardware=)")
        budget: dict[str, Any] = {"flops": flops} if flops is not None else {"gpu_hours": gpu_hours}
        if gpu_hours is not None:
            budget["hardware"] = hardware or "h100"
        body: dict[str, Any] = {"family": family, "budget": budget}
        if law is not None:
            body["law"] = law
        merged = {**(constraints or {}), **{k: v for k, v in constraint_fields.items() if v is not None}}
        if merged:
            body["constraints"] = merged
        if cost_model:
            body["cost_model"] = cost_model
        return Plan.from_json(self._request("POST", "plans/", json=body))

    def law_ranking(self, family: str) -> dict[str, Any]:
        """The family's current fits, one per law, ranked by backtest error (GET fits/ranking/):
        `{"family", "best": law or None, "ranking": [{"law", "fit_id", "version", "score", "rank",
        "ranked", "eligible", "reason", ...}]}`. Raises `NotFound` when the family has no succeeded fit."""
        answer: dict[str, Any] = self._request("GET", "fits/ranking/", params={"family": family})
        return answer

    def forecast(
        self, run_id: int, *, key: str | None = None, law: str | None = None, level: float | None = None
    ) -> dict[str, Any]:
        """Where run `run_id`'s loss will land at the end of its planned schedule (GET runs/{id}/forecast/):
        `{"forecast": {"loss", "interval", "level", "at_step", "fraction_seen", "lenders", ...} or None, "reasons",
        "verdict": {"verdict", "text", "law", ...} or None, "verdict_reason", "warnings", ...}`. With no forecast,
        `reasons` says why. Raises `NotFound` for a run the key's team does not have."""
        query = {name: value for name, value in (("key", key), ("law", law), ("level", level)) if value is not None}
        answer: dict[str, Any] = self._request("GET", f"runs/{int(run_id)}/forecast/", params=_query(query))
        return answer

    def families(self) -> list[dict[str, Any]]:
        """The team's families with their run and evaluation counts."""
        answer: list[dict[str, Any]] = self._request("GET", "families/")
        return answer
