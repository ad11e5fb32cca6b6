"""A database that does not answer is a 503 with Retry-After (a page in the UI), never a
500, and nothing is half-written."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from flask import Flask


@pytest.fixture
def down(make_app: Callable[..., Flask]) -> Flask:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/scheduler")


def test_the_api_answers_503_with_retry_after(down: Flask) -> None:
    client = down.test_client()
    body = {"payload": "p", "at": "2030-01-01T00:00:01Z"}
    for response in (client.get("/schedules"), client.post("/schedules", json=body)):
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"] == "5"
        assert "database is not answering" in response.get_json()["detail"]
    assert client.get("/healthz").status_code == 200  # the process itself is up


def test_the_ui_answers_a_styled_503_page(down: Flask) -> None:
    client = down.test_client()
    page = client.get("/ui/jobs")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    html = page.get_data(as_text=True)
    assert "<!doctype html>" in html.lower() and "database is not answering" in html
    fragment = client.get("/ui/jobs", headers={"HX-Request": "true"})
    assert fragment.status_code == 503 and fragment.mimetype == "text/plain"
