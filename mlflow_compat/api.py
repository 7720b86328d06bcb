"""Views of /api/2.0/mlflow/: MLflow's request and response bodies, its error shape and codes; thin, team-scoped.

Success is HTTP 200 with MLflow's body (its client treats any other status as an error); a refusal is
{"error_code": ..., "message": ...} with the status MLflow's server gives that code (mlflow_compat.errors).
GET endpoints read the query string, POST endpoints a JSON body. Numbers that MLflow's JSON may send as strings
(int64 fields, and metric values "NaN", "Infinity", "-Infinity") are read either way.
"""

import base64
import binascii
import io
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.mediatypes import media_type_matches

from apikit.fields import float_or_word
from apikit.json_limits import unstorable_text
from apikit.parsers import PayloadTooLarge, StrictJSONParser
from apikit.throttling import ApiKeyRateThrottle
from config.middleware import DATABASE_RETRY_AFTER_SECONDS
from mlflow_compat import errors, selectors, services
from mlflow_compat.errors import INVALID_PARAMETER_VALUE, MlflowError
from mlflow_compat.mapping import MAPPING_TAG
from mlflow_compat.models import ACTIVE, DELETED, Experiment, MlflowRun
from mlflow_compat.search import SearchInvalid, matches, parse_filter, sort_key
from runs.api.authentication import ApiKeyAuthentication, TeamPrincipal
from runs.models import Team

logger = logging.getLogger(__name__)

# MLflow's own limits (mlflow.utils.validation), enforced as its server does.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_LOG_REQUEST_SIZE = 1_000_000
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_RESULTS_DEFAULT = 1000
MAX_RESULTS_LIMIT = 50000
MAX_HISTORY_RESULTS = 25000
MAX_PAGE_OFFSET = 2**62  # a page token is not signed: a forged offset stays within the database's bigint
MAX_SEARCH_EXPERIMENTS = 1000  # read in one query
ARTIFACTS_SCHEME = "mlflow-artifacts:"
ARTIFACTS_MESSAGE = (
    "Bitscale stores no artifacts: it keeps a run's params, tags and metrics (with their history). Log artifacts "
    "to a separate MLflow artifact store, or leave them out (docs/mlflow.md)."
)


# Errors -----------------------------------------------------------------------------------------------------


def error_response(code: str, message: str, *, headers: Mapping[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"error_code": code, "message": message}, status=errors.STATUS[code])
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def mlflow_exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse:
    """Every refusal in MLflow's shape with the code its client acts on."""
    if isinstance(exc, MlflowError):
        return error_response(exc.code, exc.message)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return error_response(errors.UNAUTHENTICATED, str(exc.detail), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, exceptions.PermissionDenied):
        return error_response(errors.PERMISSION_DENIED, str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(getattr(exc, "wait", None) or 1)
        return error_response(
            errors.REQUEST_LIMIT_EXCEEDED,
            f"Rate limit exceeded; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, OperationalError | InterfaceError):
        return error_response(
            errors.TEMPORARILY_UNAVAILABLE,
            "The database is unavailable; nothing was written. Retry shortly.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, exceptions.MethodNotAllowed):
        return error_response(errors.ENDPOINT_NOT_FOUND, f"No endpoint {context['request'].method} at this path.")
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(errors.RESOURCE_DOES_NOT_EXIST, "Not found.")
    if isinstance(exc, exceptions.APIException):  # parse errors, unsupported media type, oversize body
        return error_response(INVALID_PARAMETER_VALUE, str(exc.detail))
    logger.exception("MLflow endpoint %s failed", context["request"].path)
    return error_response(errors.INTERNAL_ERROR, "Internal error; nothing was written.")


# Reading requests -------------------------------------------------------------------------------------------


def _check_storable(data: Mapping[str, Any]) -> None:
    """Text the database cannot hold (NUL, a lone surrogate), anywhere in a field, is refused by the field's name
    before anything is read or written: PostgreSQL would fail the query."""
    items = data.lists() if isinstance(data, QueryDict) else data.items()
    for name, value in items:
        why = unstorable_text([name, value])
        if why is not None:
            raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value for parameter '{name}': {why}")


def _plain_utf8_json(request: HttpRequest) -> bool:
    """Whether the request's JSON body is UTF-8 without a single `\\u` escape: JSON can carry NUL or a lone
    surrogate only as such an escape (raw control characters are refused by the parser, and UTF-8 holds no
    surrogate), so nothing in it needs `_check_storable`'s walk over every value."""
    encoding = (request.encoding or settings.DEFAULT_CHARSET).lower().replace("_", "-")
    return encoding in {"utf-8", "utf8"} and b"\\u" not in request.body


def _required(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value not in (None, ""):
            return value
    raise MlflowError(INVALID_PARAMETER_VALUE, f"Missing value for required parameter '{names[0]}'.")


def _string(data: Mapping[str, Any], name: str, *, limit: int | None = None, default: str = "") -> str:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value {value!r} for parameter '{name}': a string.")
    if limit is not None and len(value) > limit:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"'{name}' exceeds the maximum length of {limit}.")
    return value


def _integer(data: Mapping[str, Any], name: str, *, default: int | None = None) -> int | None:
    value: Any = data.get(name)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
        if not INT64_MIN <= number <= INT64_MAX:  # MLflow's int64, and the database's bigint
            raise ValueError
        return number
    except (TypeError, ValueError, OverflowError):
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value {value!r} for parameter '{name}'.") from None


def _metric_value(value: Any, path: str) -> float:
    """A number, or MLflow's JSON words for the non-finite ones ("NaN", "Infinity", "-Infinity")."""
    if isinstance(value, bool):
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value {value!r} for '{path}': a double.")
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an integer past a double's range: no double to store
            raise MlflowError(
                INVALID_PARAMETER_VALUE, f"Invalid value for '{path}': beyond a double's range."
            ) from None
    if isinstance(value, str) and value.strip() in {"NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"}:
        return float(value.strip().replace("Infinity", "inf"))
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value {value!r} for '{path}': a double.")


def _key(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Missing or invalid key for '{path}'.")
    if len(value) > MAX_ENTITY_KEY_LENGTH:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"'{path}' exceeds the maximum length of {MAX_ENTITY_KEY_LENGTH}.")
    return value


def _key_values(items: Any, path: str, *, limit: int) -> dict[str, str]:
    """[{"key": k, "value": v}, ...] as a dict; a key given twice with different values is refused."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise MlflowError(INVALID_PARAMETER_VALUE, f"'{path}' must be a list of {{key, value}}.")
    found: dict[str, str] = {}
    for position, item in enumerate(items):
        where = f"{path}[{position}]"
        if not isinstance(item, dict):
            raise MlflowError(INVALID_PARAMETER_VALUE, f"'{where}' must be an object with key and value.")
        key = _key(item.get("key"), f"{where}.key")
        value = item.get("value", "")
        value = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        if len(value) > limit:
            raise MlflowError(INVALID_PARAMETER_VALUE, f"'{where}.value' exceeds the maximum length of {limit}.")
        if key in found and found[key] != value:
            raise MlflowError(INVALID_PARAMETER_VALUE, f"Duplicate keys with different values in '{path}': {key!r}.")
        found[key] = value
    return found


def _metric(item: Any, path: str) -> services.MetricInput:
    if not isinstance(item, dict):
        raise MlflowError(INVALID_PARAMETER_VALUE, f"'{path}' must be an object with key, value, timestamp.")
    if item.get("value") is None:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Missing value for required parameter '{path}.value'.")
    timestamp = _integer(item, "timestamp")
    if timestamp is None:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Missing value for required parameter '{path}.timestamp'.")
    return services.MetricInput(
        key=_key(item.get("key"), f"{path}.key"),
        value=_metric_value(item["value"], f"{path}.value"),
        timestamp=timestamp,
        step=_integer(item, "step", default=0) or 0,
    )


def _order_by(data: Mapping[str, Any]) -> list[str]:
    value = data.get("order_by") or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MlflowError(INVALID_PARAMETER_VALUE, "order_by must be a list of strings.")
    return value


def _page_offset(token: Any) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
        if not isinstance(offset, int) or not 0 <= offset <= MAX_PAGE_OFFSET:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise MlflowError(INVALID_PARAMETER_VALUE, "Invalid page token.") from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _max_results(data: Mapping[str, Any], *, default: int, limit: int) -> int:
    value = _integer(data, "max_results", default=default)
    if value is None or value < 1 or value > limit:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Invalid value for max_results: between 1 and {limit}.")
    return value


# Rendering --------------------------------------------------------------------------------------------------


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def experiment_body(experiment: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "artifact_location": f"{ARTIFACTS_SCHEME}/{experiment.experiment_id}",
        "lifecycle_stage": experiment.lifecycle_stage,
        "last_update_time": int(experiment.updated_at.timestamp() * 1000),
        "creation_time": int(experiment.created_at.timestamp() * 1000),
        "tags": _tags(experiment.tags),
    }


def run_info_body(run: MlflowRun) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.run_name,
        "experiment_id": run.experiment.experiment_id,
        "user_id": run.user_id,
        "status": run.status,
        # MLflow's client resolves this scheme against the tracking server, where artifact paths answer with the
        # clear refusal below; an empty URI would make it write artifacts silently to the local directory.
        "artifact_uri": f"{ARTIFACTS_SCHEME}/{run.experiment.experiment_id}/{run.run_id}/artifacts",
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.start_time is not None:
        info["start_time"] = run.start_time
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_tags(run: MlflowRun) -> dict[str, str]:
    """The run's tags as MLflow shows and searches them: the logged ones, and Bitscale's `bitscale.run_id` (the
    Bitscale run), `bitscale.error` (why that run is missing or behind) and `bitscale.history_dropped`, each
    replacing a logged tag of its name (selectors.DERIVED_TAGS says the same in SQL)."""
    tags = dict(run.tags)
    if run.bitscale_run_id is not None:
        tags["bitscale.run_id"] = str(run.bitscale_run_id)
    if run.mapping_error:
        tags["bitscale.error"] = run.mapping_error
    if run.history_dropped:
        tags["bitscale.history_dropped"] = str(run.history_dropped)
    return tags


def run_body(run: MlflowRun) -> dict[str, Any]:
    """MLflow's Run: info, data (each metric's latest value, params, tags) and empty inputs. Bitscale adds the tag
    `bitscale.run_id` (the Bitscale run) and `bitscale.error` (why that run is missing or behind)."""
    tags = run_tags(run)
    metrics = [
        {"key": key, "value": value, "timestamp": timestamp, "step": step}
        for key, (value, timestamp, step) in run.metrics.items()
    ]
    return {
        "info": run_info_body(run),
        "data": {"metrics": metrics, "params": _tags(run.params), "tags": _tags(tags)},
        "inputs": {},
    }


# Views ------------------------------------------------------------------------------------------------------


class MlflowView:
    """One MLflow endpoint: `handle` takes the team and the request's fields and returns the 200 body.

    A plain Django view rather than DRF's APIView: MLflow's calls need none of DRF's content negotiation,
    request wrapping or response finalisation, and each call of a training loop pays for them. What DRF did for
    these views is done here in the same order with the same classes: API-key authentication
    (`ApiKeyAuthentication`, 401 without a key), a read-only key refused on writes (403), the per-key rate limit
    (`ApiKeyRateThrottle`, 429 with Retry-After), the strict JSON parser for POST bodies (application/json only;
    an empty body is {}), and every refusal through `mlflow_exception_handler`; the body is rendered by DRF's
    JSONRenderer, byte for byte as before.
    """

    method: ClassVar[str] = "POST"
    writes: ClassVar[bool] = True
    authentication = ApiKeyAuthentication()
    parser = StrictJSONParser()
    renderer = JSONRenderer()

    @classmethod
    def as_view(cls) -> Callable[[HttpRequest], HttpResponse]:
        view = cls()

        @csrf_exempt  # API clients send no CSRF token; requests are authenticated by key
        def endpoint(request: HttpRequest) -> HttpResponse:
            return view.dispatch(request)

        endpoint.view_class = cls  # type: ignore[attr-defined]
        return endpoint

    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        raise NotImplementedError

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        try:
            if request.method != self.method:
                raise exceptions.MethodNotAllowed(str(request.method))
            principal = self._authenticate(request)
            if self.writes and self.method == "POST" and principal.read_only:
                raise exceptions.PermissionDenied(READ_ONLY_MESSAGE)
            self._throttle(request)
            data = request.GET if self.method == "GET" else self._body(request)
            if not isinstance(data, Mapping):
                raise MlflowError(INVALID_PARAMETER_VALUE, "The request body must be a JSON object.")
            if self.method == "GET" or not _plain_utf8_json(request):
                _check_storable(data)
            body = self.renderer.render(self.handle(principal.team, data, request))
            response: HttpResponse = HttpResponse(body, content_type="application/json")
        except Exception as exc:  # every refusal in MLflow's shape; anything unexpected is logged and a 500
            response = mlflow_exception_handler(exc, {"request": request})
        response["Allow"] = self.method
        return response

    def _authenticate(self, request: HttpRequest) -> TeamPrincipal:
        found = self.authentication.authenticate(request)  # type: ignore[arg-type]
        if found is None:
            raise exceptions.NotAuthenticated()
        principal, key = found
        request.auth = key  # type: ignore[attr-defined]  # what the throttle counts by
        return principal

    def _throttle(self, request: HttpRequest) -> None:
        throttle = ApiKeyRateThrottle()  # reads API_RATE_LIMIT now, as DRF builds one per request
        if not throttle.allow_request(request, self):  # type: ignore[arg-type]
            raise exceptions.Throttled(throttle.wait())

    def _body(self, request: HttpRequest) -> Any:
        content_type = request.META.get("CONTENT_TYPE", "")
        try:
            raw = request.body
        except RequestDataTooBig:
            raise PayloadTooLarge() from None
        if not raw or not content_type:
            return {}  # DRF's reading of a request without a body or without a media type
        if not media_type_matches(self.parser.media_type, content_type):
            raise exceptions.UnsupportedMediaType(content_type)
        context = {"encoding": request.encoding or settings.DEFAULT_CHARSET}
        return self.parser.parse(io.BytesIO(raw), content_type, context)


READ_ONLY_MESSAGE = "This API key is read-only: it may read runs and experiments but not log them."


class GetView(MlflowView):
    method = "GET"
    writes = False


class PostView(MlflowView):
    method = "POST"


class ExperimentGetByName(GetView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        name = _string(data, "experiment_name")
        if not name:
            raise MlflowError(INVALID_PARAMETER_VALUE, "Missing value for required parameter 'experiment_name'.")
        if name == services.DEFAULT_EXPERIMENT_NAME:  # the default experiment is made on first use
            return {"experiment": experiment_body(services.experiment_default(team=team))}
        return {"experiment": experiment_body(selectors.experiment_get_by_name(team=team, name=name))}


class ExperimentGet(GetView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        experiment_id = str(_required(data, "experiment_id"))
        if experiment_id == "0":  # the default experiment is made on first use
            return {"experiment": experiment_body(services.experiment_default(team=team))}
        return {"experiment": experiment_body(selectors.experiment_get(team=team, experiment_id=experiment_id))}


class ExperimentCreate(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        if data.get("artifact_location"):
            raise MlflowError(INVALID_PARAMETER_VALUE, ARTIFACTS_MESSAGE)
        tags = _key_values(data.get("tags"), "tags", limit=MAX_EXPERIMENT_TAG_VAL_LENGTH)
        if MAPPING_TAG in tags:
            _check_mapping(tags[MAPPING_TAG])
        experiment = services.experiment_create(team=team, name=_string(data, "name"), tags=tags)
        return {"experiment_id": experiment.experiment_id}


class ExperimentSetTag(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        experiment_id = str(_required(data, "experiment_id"))
        key = _key(data.get("key"), "key")
        value = _string(data, "value", limit=MAX_EXPERIMENT_TAG_VAL_LENGTH)
        if key == MAPPING_TAG:
            _check_mapping(value)
        services.experiment_set_tag(team=team, experiment_id=experiment_id, key=key, value=value)
        return {}


def _check_mapping(text: str) -> None:
    """A malformed team mapping is refused when it is set, so the mistake shows in the script that made it."""
    from mlflow_compat.mapping import MappingInvalid, parse_team_mapping

    try:
        parse_team_mapping(json.loads(text))
    except (ValueError, MappingInvalid) as exc:
        raise MlflowError(INVALID_PARAMETER_VALUE, f"Tag {MAPPING_TAG}: {exc}") from None


class ExperimentSearch(PostView):
    writes = False  # a read sent as POST

    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        max_results = _max_results(data, default=MAX_RESULTS_DEFAULT, limit=MAX_RESULTS_LIMIT)
        offset = _page_offset(data.get("page_token"))
        view_type = str(data.get("view_type") or "ACTIVE_ONLY")
        try:
            clauses = parse_filter(_string(data, "filter"))
            key = sort_key(_order_by(data))
        except SearchInvalid as exc:
            raise MlflowError(INVALID_PARAMETER_VALUE, str(exc)) from None
        services.experiment_default(team=team)
        records = []
        for experiment in selectors.experiment_list(team=team):
            if not _view_type_admits(view_type, experiment.lifecycle_stage):
                continue
            attributes = {
                "name": experiment.name,
                "experiment_id": experiment.experiment_id,
                "creation_time": experiment.created_at.timestamp() * 1000,
                "last_update_time": experiment.updated_at.timestamp() * 1000,
            }
            record: dict[str, Any] = {"attributes": attributes, "tags": experiment.tags, "row": experiment}
            if matches(clauses, record):
                records.append(record)
        if key is not None:
            records.sort(key=key)
        page = records[offset : offset + max_results]
        body: dict[str, Any] = {"experiments": [experiment_body(r["row"]) for r in page]}
        if offset + max_results < len(records):
            body["next_page_token"] = _page_token(offset + max_results)
        return body


def _view_type_admits(view_type: str, stage: str) -> bool:
    if view_type in {"ALL", "3"}:
        return True
    if view_type in {"DELETED_ONLY", "2"}:
        return stage == DELETED
    return stage == ACTIVE


class RunCreate(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        tags = _key_values(data.get("tags"), "tags", limit=MAX_TAG_VAL_LENGTH)
        mlflow_run = services.run_create(
            team=team,
            experiment_id=str(data.get("experiment_id") or "0"),
            run_name=_string(data, "run_name", limit=250),
            start_time=_integer(data, "start_time"),
            tags=tags,
            user_id=_string(data, "user_id", limit=250),
        )
        return {"run": run_body(mlflow_run)}


def _run_id(data: Mapping[str, Any]) -> str:
    return str(_required(data, "run_id", "run_uuid"))


class RunGet(GetView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        return {"run": run_body(selectors.run_get(team=team, run_id=_run_id(data)))}


RUN_STATUSES = {choice.value for choice in MlflowRun.Status}


class RunUpdate(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        status = data.get("status")
        if status is not None and (not isinstance(status, str) or status not in RUN_STATUSES):
            raise MlflowError(
                INVALID_PARAMETER_VALUE, f"Invalid status {status!r}: one of {', '.join(sorted(RUN_STATUSES))}."
            )
        mlflow_run = services.run_update(
            team=team,
            run_id=_run_id(data),
            status=status,
            end_time=_integer(data, "end_time"),
            run_name=_string(data, "run_name", limit=250) or None,
        )
        return {"run_info": run_info_body(mlflow_run)}


class RunDelete(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        services.run_delete(team=team, run_id=_run_id(data))
        return {}


class RunLogBatch(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
        if size > MAX_BATCH_LOG_REQUEST_SIZE:
            raise MlflowError(
                INVALID_PARAMETER_VALUE,
                f"Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got a request "
                f"of size {size}.",
            )
        metrics, params, tags = data.get("metrics") or [], data.get("params") or [], data.get("tags") or []
        if not all(isinstance(x, list) for x in (metrics, params, tags)):
            raise MlflowError(INVALID_PARAMETER_VALUE, "metrics, params and tags must be lists.")
        for name, items, limit in (
            ("metrics", metrics, MAX_METRICS_PER_BATCH),
            ("params", params, MAX_PARAMS_TAGS_PER_BATCH),
            ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH),
        ):
            if len(items) > limit:
                raise MlflowError(
                    INVALID_PARAMETER_VALUE,
                    f"A batch logging request can contain at most {limit} {name}. Got {len(items)} {name}. "
                    "Please split up metrics, params, and tags across multiple requests and try again.",
                )
        total = len(metrics) + len(params) + len(tags)
        if total > MAX_ENTITIES_PER_BATCH:
            raise MlflowError(
                INVALID_PARAMETER_VALUE,
                f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params, and tags "
                f"in total. Got {total}.",
            )
        services.run_log(
            team=team,
            run_id=_run_id(data),
            metrics=[_metric(item, f"metrics[{i}]") for i, item in enumerate(metrics)],
            params=_key_values(params, "params", limit=MAX_PARAM_VAL_LENGTH),
            tags=_key_values(tags, "tags", limit=MAX_TAG_VAL_LENGTH),
        )
        return {}


class RunLogMetric(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        services.run_log(team=team, run_id=_run_id(data), metrics=[_metric(data, "metric")])
        return {}


class RunLogParameter(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        params = _key_values(
            [{"key": data.get("key"), "value": data.get("value")}], "param", limit=MAX_PARAM_VAL_LENGTH
        )
        services.run_log(team=team, run_id=_run_id(data), params=params)
        return {}


class RunSetTag(PostView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        tags = _key_values([{"key": data.get("key"), "value": data.get("value")}], "tag", limit=MAX_TAG_VAL_LENGTH)
        services.run_log(team=team, run_id=_run_id(data), tags=tags)
        return {}


class RunSearch(PostView):
    writes = False  # a read sent as POST

    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        max_results = _max_results(data, default=MAX_RESULTS_DEFAULT, limit=MAX_RESULTS_LIMIT)
        offset = _page_offset(data.get("page_token"))
        view_type = str(data.get("run_view_type") or "ACTIVE_ONLY")
        ids = data.get("experiment_ids") or []
        if not isinstance(ids, list):
            raise MlflowError(INVALID_PARAMETER_VALUE, "experiment_ids must be a list.")
        ids = list(dict.fromkeys(str(i) for i in ids))
        if len(ids) > MAX_SEARCH_EXPERIMENTS:
            raise MlflowError(
                INVALID_PARAMETER_VALUE, f"experiment_ids: at most {MAX_SEARCH_EXPERIMENTS} experiments per search."
            )
        try:
            clauses = parse_filter(_string(data, "filter"))
            key = sort_key(_order_by(data))
        except SearchInvalid as exc:
            raise MlflowError(INVALID_PARAMETER_VALUE, str(exc)) from None
        if "0" in ids:  # the default experiment is made on first use
            services.experiment_default(team=team)
        experiments = selectors.experiments_get(team=team, experiment_ids=ids)
        stages = [stage for stage in (ACTIVE, DELETED) if _view_type_admits(view_type, stage)]
        # Paged by the database when it can decide the whole filter and the order is MLflow's default.
        runs, left = selectors.run_search(
            team=team,
            experiments=experiments,
            stages=stages,
            clauses=clauses,
            page=(offset, max_results + 1) if key is None else None,
        )
        if left or key is not None:
            records = [(record, run) for run in runs if matches(left, record := _search_record(run))]
            if key is not None:
                records.sort(key=lambda pair: key(pair[0]))  # stable: the default order breaks ties
            runs = [run for _, run in records][offset : offset + max_results + 1]
        body: dict[str, Any] = {"runs": [run_body(mlflow_run) for mlflow_run in runs[:max_results]]}
        if len(runs) > max_results:
            body["next_page_token"] = _page_token(offset + max_results)
        return body


def _search_record(mlflow_run: MlflowRun) -> dict[str, Any]:
    """What a search filter and order_by read of a run: its attributes, params, tags (with Bitscale's) and each
    metric's latest value."""
    return {
        "attributes": {
            "run_id": mlflow_run.run_id,
            "run_name": mlflow_run.run_name,
            "status": mlflow_run.status,
            "user_id": mlflow_run.user_id,
            "start_time": mlflow_run.start_time,
            "end_time": mlflow_run.end_time,
            "lifecycle_stage": mlflow_run.lifecycle_stage,
        },
        "params": mlflow_run.params,
        "tags": run_tags(mlflow_run),
        "metrics": {k: selectors.metric_value_decode(v[0]) for k, v in mlflow_run.metrics.items()},
    }


class MetricGetHistory(GetView):
    def handle(self, team: Team, data: Mapping[str, Any], request: HttpRequest) -> dict[str, Any]:
        mlflow_run = selectors.run_get(team=team, run_id=_run_id(data))
        key = _key(data.get("metric_key"), "metric_key")
        max_results = _max_results(data, default=MAX_HISTORY_RESULTS, limit=MAX_HISTORY_RESULTS)
        offset = _page_offset(data.get("page_token"))
        points = selectors.run_metric_history(mlflow_run=mlflow_run, key=key, offset=offset, limit=max_results + 1)
        body: dict[str, Any] = {
            "metrics": [
                {"key": key, "value": float_or_word(value), "timestamp": timestamp, "step": step}
                for value, timestamp, step in points[:max_results]
            ]
        }
        if len(points) > max_results:
            body["next_page_token"] = _page_token(offset + max_results)
        return body


# Paths that are not endpoints -------------------------------------------------------------------------------


@csrf_exempt  # API clients send no CSRF token; the answer is a refusal whatever the method
def endpoint_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other path under /api/2.0/ or /api/3.0/: MLflow's ENDPOINT_NOT_FOUND, which its client acts on."""
    return error_response(
        errors.ENDPOINT_NOT_FOUND,
        f"Bitscale implements a subset of MLflow's tracking API (docs/mlflow.md); {request.method} "
        f"{request.path} is not part of it.",
    )


@csrf_exempt
def artifacts_unsupported(request: HttpRequest, path: str = "") -> JsonResponse:
    return error_response(errors.ENDPOINT_NOT_FOUND, ARTIFACTS_MESSAGE)


ENDPOINTS: dict[str, type[MlflowView]] = {
    "experiments/get-by-name": ExperimentGetByName,
    "experiments/get": ExperimentGet,
    "experiments/create": ExperimentCreate,
    "experiments/search": ExperimentSearch,
    "experiments/set-experiment-tag": ExperimentSetTag,
    "runs/create": RunCreate,
    "runs/get": RunGet,
    "runs/update": RunUpdate,
    "runs/delete": RunDelete,
    "runs/log-batch": RunLogBatch,
    "runs/log-metric": RunLogMetric,
    "runs/log-parameter": RunLogParameter,
    "runs/set-tag": RunSetTag,
    "runs/search": RunSearch,
    "metrics/get-history": MetricGetHistory,
}
