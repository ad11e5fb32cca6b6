"""Routes that describe themselves: each API view is declared once with its request and
answer models; the declaration both validates requests and builds /openapi.json."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, get_origin

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from app import jsontext
from app.problems import Problem, field_problem, from_validation_error
from app.schemas import NAME_PATTERN, Strict

REF_TEMPLATE = "#/components/schemas/{model}"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    list_response: bool
    headers: tuple[dict[str, Any], ...] = ()
    body_required: bool = True


OPERATIONS: list[Operation] = []
PATH_TYPES: dict[str, dict[str, str]] = {
    "": {"type": "string"},
    "uuid": {"type": "string", "format": "uuid"},
}
PATH_PARAMETERS: dict[str, dict[str, str]] = {  # by name, where the type says too little
    "name": {"type": "string", "pattern": NAME_PATTERN},  # a queue's
}
# Text a request may carry: no NUL (Strict.storable_text; the NUL itself, in JSON an escape).
# Lone UTF-16 surrogates are refused too; no pattern can say so that every tool reads.
STORABLE_TEXT = "^[^\x00]*$"


def operation(
    bp: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    list_response: bool = False,
    ignore_fields: frozenset[str] = frozenset(),
    query_status: int = 400,
    headers: Iterable[dict[str, Any]] = (),
    body_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view; parse its JSON body into `body=` and its query into `query=`
    (`headers`: the request headers it reads, as OpenAPI parameters; without
    `body_required`, no body is the body model's defaults)."""
    op = Operation(
        method,
        rule,
        summary,
        tag,
        body,
        query,
        response,
        status,
        tuple(errors),
        list_response,
        tuple(headers),
        body_required,
    )
    OPERATIONS.append(op)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if body is not None:
                given = body_required or request.get_data(cache=True).strip()
                kwargs["body"] = parse_body(body, ignore_fields) if given else body()
            if query is not None:
                kwargs["query"] = parse_query(query, query_status)
            return view(**kwargs)

        bp.add_url_rule(rule, view.__name__, wrapper, methods=[method])
        return wrapper

    return decorator


def read_json() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise field_problem("body", "a JSON body is required", 400)
    try:
        return jsontext.loads(raw)
    except jsontext.TooDeep as exc:
        raise field_problem("body", f"is not valid JSON: {exc}", 400) from exc
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise field_problem("body", "is not valid JSON", 400) from exc


def parse_body(model: type[M], ignore_fields: frozenset[str] = frozenset()) -> M:
    data = read_json()
    if not isinstance(data, dict):
        raise field_problem("body", "must be a JSON object")
    data = {key: value for key, value in data.items() if key not in ignore_fields}
    return validate(model, data)


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix) from exc


@functools.cache
def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    """A query model's list fields (read once per model, not per request)."""
    fields = model.model_fields.items()
    return frozenset(name for name, info in fields if get_origin(info.annotation) is list)


def parse_query(model: type[M], status: int = 400) -> M:
    """The query string as the model's fields: a list field takes every value given."""
    lists = _list_fields(model)
    data = {
        key: request.args.getlist(key) if key in lists else request.args.get(key)
        for key in request.args
    }
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = from_validation_error(exc)
        raise Problem(status, "Invalid query", problem.detail, errors=problem.errors) from exc


def document(title: str, version: str) -> dict[str, Any]:
    models = _models()
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF_TEMPLATE)
    requests = {model.__name__ for model in _subclasses(Strict)}
    for name, schema in defs.get("$defs", {}).items():
        if name in requests:
            _storable_strings(schema)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(_openapi_path(op.rule), {})[op.method.lower()] = _operation_doc(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": LIMITS},
        "paths": paths,
        # Optional ({}): while no key exists the service answers loopback callers without one.
        "security": [{"apiKey": []}, {}],
        "components": {
            "schemas": {**defs.get("$defs", {}), "Problem": PROBLEM_SCHEMA},
            "securitySchemes": {"apiKey": API_KEY_SCHEME},
        },
    }


API_KEY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "An API key, made with `flask --app wsgi keys create --name NAME [--scope read] "
        "[--labels key=value ...]`. Once a key exists (or REQUIRE_API_KEYS is set) every "
        "call needs one; until then only loopback callers are answered. A `read` key may "
        "only read (other methods: 403). A key made with labels sees and changes only the "
        "jobs that carry all of them: other jobs, their runs and their audit entries answer "
        "404, as if they did not exist, and the jobs it creates get its labels."
    ),
}


LIMITS = (
    "Limits beyond what the schemas say: a JSON body nests at most "
    f"{jsontext.MAX_DEPTH} levels of objects and arrays (deeper is a 400 naming `body`); "
    "a page `cursor` is only ever one this service gave out (anything else is a 400 naming "
    "`cursor`); text never holds a NUL character or a lone UTF-16 surrogate (a 422 naming "
    "the field); the timing fields must make a rule that can fire (a 422 naming the field: "
    "an instant that exists, an end after the start, a cron expression that matches a "
    "time, `minute` or `at` to start from)."
)


def _subclasses(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for sub in model.__subclasses__():
        found += _subclasses(sub)
    return found


def _storable_strings(schema: Any) -> None:
    """Say what Strict.storable_text refuses, on every free-form string of a request."""
    if isinstance(schema, list):
        for item in schema:
            _storable_strings(item)
        return
    if not isinstance(schema, dict):
        return
    free = not {"pattern", "format", "enum", "const"} & set(schema)
    if schema.get("type") == "string" and free:
        schema["pattern"] = STORABLE_TEXT
    for value in schema.values():  # subschemas, and maps of them ("properties", "$defs")
        _storable_strings(value)


def _models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for op in OPERATIONS:
        for model in (op.body, op.response):
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _operation_doc(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', op.rule).strip('_')}",
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    return doc


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": PATH_PARAMETERS.get(name) or PATH_TYPES[converter or ""],
        }
        for converter, name in re.findall(r"<(?:([a-z]+):)?([A-Za-z_]+)>", op.rule)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        _storable_strings(schema)
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "schema": {k: v for k, v in prop.items() if k != "title"},
                }
            )
    return params + [{"in": "header", **header} for header in op.headers]


def _responses(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if op.response is not None:
        schema: dict[str, Any] = _ref(op.response)
        if op.list_response:
            schema = {"type": "array", "items": schema}
        content = {"application/json": {"schema": schema}}
    ok: dict[str, Any] = {"description": "OK"}
    if content:
        ok["content"] = content
    responses: dict[str, Any] = {str(op.status): ok}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for code in sorted({400, 401, 403, 413, 429, *op.errors}):
        responses[str(code)] = {"description": "Problem", "content": problem}
    return responses


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
