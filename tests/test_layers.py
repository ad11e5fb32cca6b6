"""The layers DESIGN.md draws: the store and the request shaping speak the domain
(app.errors), never HTTP; the API and the UI map its errors to their answers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flask import Flask

from app import jobinput, jobs, runs
from app.cursors import decode_cursor
from app.errors import BadLookup, Conflict, Invalid, NotFound, TooLarge
from app.problems import problem_of
from app.schemas import JobIn

APP = Path(__file__).resolve().parents[1] / "app"
DOMAIN_MODULES = ["jobs.py", "jobinput.py", "runs.py", "queue.py", "cursors.py", "errors.py"]
HTTP_MODULES = {"app.problems", "werkzeug", "werkzeug.exceptions", "app.api", "app.ui"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_the_domain_never_speaks_http(module: str) -> None:
    speaks = {name for name in imported(APP / module) if name.split(".")[0] == "werkzeug"}
    speaks |= imported(APP / module) & HTTP_MODULES
    assert not speaks, f"app/{module} imports {sorted(speaks)}"


def test_each_domain_error_has_one_http_answer() -> None:
    answers = {
        Invalid.field("cron", "bad"): (422, "Invalid request"),
        TooLarge.field("payload", "larger than 10 bytes"): (413, "Payload too large"),
        BadLookup.field("cursor", "not a cursor"): (400, "Invalid request"),
        NotFound("job x"): (404, "Not found"),
        Conflict("Not retryable", "run x is delivered"): (409, "Not retryable"),
    }
    for error, (status, title) in answers.items():
        problem = problem_of(error)
        assert (problem.status, problem.title) == (status, title)
    field = problem_of(Invalid.field("target.url", "refused"))
    assert field.errors == [{"field": "target.url", "message": "refused"}]


def test_the_store_and_the_shaping_raise_domain_errors(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(NotFound):
            jobs.get_job("not-a-uuid")
        with pytest.raises(NotFound):
            runs.get_run("00000000-0000-0000-0000-000000000000")
        with pytest.raises(BadLookup):
            decode_cursor("nonsense")
        with pytest.raises(Invalid) as bad:
            jobinput.job_values(
                JobIn.model_validate({"payload": "x", "recurring": "cron", "cron": "61 * * * *"})
            )
        assert [e.field for e in bad.value.errors] == ["cron"]
        app.config["MAX_PAYLOAD_BYTES"] = 3
        with pytest.raises(TooLarge):
            jobinput.job_values(JobIn.model_validate({"payload": "four"}))


def test_a_batchs_errors_name_each_item(app: Flask) -> None:
    good = {"payload": "ok", "at": "2030-01-01T00:00:00Z"}
    bad_cron = {"payload": "x", "recurring": "cron", "cron": "61 * * * *"}
    items = [JobIn.model_validate(good), JobIn.model_validate(bad_cron)]
    with app.app_context(), pytest.raises(Invalid) as bad:
        jobinput.jobs_values(items)
    assert [e.field for e in bad.value.errors] == ["jobs.1.cron"]
    assert bad.value.detail == "no job was created"
