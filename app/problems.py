"""RFC 9457 problem details: every API error is one of these, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, render_template, request
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.errors import BadLookup, Conflict, DomainError, Invalid, NotFound, TooLarge
from app.schemas import invalid_from

PROBLEM_TYPE = "about:blank"
API_PREFIXES = ("/schedules", "/runs", "/queues", "/openapi.json", "/healthz", "/readyz", "/audit")


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        type_: str = PROBLEM_TYPE,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.type = type_

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        return body


def field_problem(field: str, message: str, status: int = 422) -> Problem:
    """A request whose field `field` is wrong."""
    return Problem(
        status,
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} does not exist")


def problem_of(error: DomainError) -> Problem:
    """The one HTTP answer to each kind of domain error."""
    if isinstance(error, Invalid):
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
        if isinstance(error, TooLarge):
            return Problem(413, "Payload too large", error.detail, errors=errors)
        status = 400 if isinstance(error, BadLookup) else 422
        return Problem(status, "Invalid request", error.detail, errors=errors)
    if isinstance(error, NotFound):
        return not_found(error.what)
    if isinstance(error, Conflict):
        return Problem(409, error.title, error.detail)
    return Problem(400, "Bad request", str(error))


def from_validation_error(exc: ValidationError, prefix: str = "") -> Problem:
    return problem_of(invalid_from(exc, prefix))


def problem_response(problem: Problem) -> Response:
    response = Response(
        json.dumps(problem.to_dict()),
        status=problem.status,
        mimetype="application/problem+json",
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIXES) or request.accept_mimetypes.best == (
        "application/json"
    )


# What a database that is down, restarting or locked for too long raises: not our bug,
# and the request may well succeed a few seconds later.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
OUTAGE_RETRY_AFTER = 5  # seconds


def database_unavailable(exc: Exception) -> Problem:
    """The answer to a request that met a database outage (logged, without a stack)."""
    logging.getLogger("app").warning(
        "database unavailable", extra={"action": "request", "path": request.path,
                                       "error": type(exc).__name__},
    )  # fmt: skip
    return Problem(
        503,
        "Service unavailable",
        "the database is not answering; nothing was changed, try again shortly",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
    )


def register(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(DomainError, lambda error: problem_response(problem_of(error)))
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, lambda exc: problem_response(database_unavailable(exc)))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException | tuple[str, int]:
        if not is_api_request():
            if exc.code is None or exc.code < 400:
                return exc
            # A page no UI route matched (/ui/nowhere): the UI's own error page, styled.
            problem = Problem(exc.code, exc.name, exc.description)
            page = render_template("error.html", problem=problem, message=exc.description)
            return page, exc.code
        status = exc.code or 500
        problem = Problem(status, exc.name, exc.description)
        if status == 413:
            problem = Problem(413, "Request too large", "the request body is larger than allowed")
        response = problem_response(problem)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error", extra={"action": "request", "path": request.path})
        return problem_response(Problem(500, "Internal error", "the error was logged"))
