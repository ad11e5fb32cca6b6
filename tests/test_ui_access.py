"""Signing in to the UI when the service asks for it; the session cookie's flags."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.test_access import bearer, make_key


def sign_in(client: FlaskClient, secret: str, next_path: str = "/ui/jobs") -> str:
    """Post the sign-in form with its CSRF token; answer "<status> <Location>"."""
    page = client.get("/ui/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"secret": secret, "csrf_token": csrf}
    response = client.post(f"/ui/login?next={next_path}", data=form)
    return f"{response.status_code} {response.headers.get('Location', '')}"


def test_open_while_no_key_exists(client: FlaskClient) -> None:
    assert client.get("/ui/jobs").status_code == 200


def test_a_key_opens_the_ui_and_names_the_actor(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    key = make_key(app, "operator")
    client = app.test_client()
    refused = client.get("/ui/jobs")
    assert refused.status_code == 302 and "/ui/login" in refused.headers["Location"]
    assert sign_in(client, "wrong").startswith("200")
    assert sign_in(client, key) == "303 /ui/jobs"
    assert client.get("/ui/jobs").status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_admin_password_and_no_open_redirect(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=True, ADMIN_PASSWORD="correct horse")
    client = app.test_client()
    assert client.get("/ui/").status_code == 302
    assert sign_in(client, "correct horse", "https://evil.example/") == "303 /ui/"


def test_session_cookie_is_secure_over_https(make_app: Callable[..., Flask]) -> None:
    app = make_app(ADMIN_PASSWORD="pw", WTF_CSRF_ENABLED=False)
    client = app.test_client()
    response = client.post("/ui/login", data={"secret": "pw"}, base_url="https://localhost")
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]
    plain = app.test_client().post("/ui/login", data={"secret": "pw"})
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_read_only_key_cannot_change_through_the_ui(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=False)
    key = make_key(app, "viewer", "read")
    client = app.test_client()
    assert client.post("/ui/login", data={"secret": key}).status_code == 303
    assert client.get("/ui/jobs").status_code == 200
    assert client.post("/ui/runs/retry-dead").status_code == 403
    assert client.post("/ui/jobs/bulk", data={"action": "delete"}).status_code == 403


def test_a_read_only_user_signs_out_and_sees_no_write_controls(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(WTF_CSRF_ENABLED=False)
    key = make_key(app, "viewer", "read")
    client = app.test_client()
    job = {"payload": "p", "at": "2030-01-01T00:00:01Z"}
    job_id = client.post("/schedules", json=job, headers=bearer(make_key(app, "w"))).get_json()
    assert client.post("/ui/login", data={"secret": key}).status_code == 303
    for page in ("/ui/", "/ui/jobs", f"/ui/jobs/{job_id['jobId']}", "/ui/runs"):
        html = client.get(page).get_data(as_text=True)
        controls = ("New job", "Run now", "Delete", "Pause", ">Edit<", "/edit", 'name="ids"')
        for control in controls:
            assert control not in html, (page, control)
    refused = client.get("/ui/jobs/new")
    assert refused.status_code == 403 and "read-only key" in refused.get_data(as_text=True)
    assert client.post("/ui/logout").status_code == 303  # sign-out is always allowed
    assert client.get("/ui/jobs").status_code == 302  # and the session is gone


def test_revoking_a_key_ends_the_ui_sessions_it_opened(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=False)
    key = make_key(app, "operator")
    make_key(app, "other")  # keys still exist after the revocation: sign-in stays required
    client = app.test_client()
    assert client.post("/ui/login", data={"secret": key}).status_code == 303
    assert client.get("/ui/jobs").status_code == 200
    result = app.test_cli_runner().invoke(args=["keys", "revoke", "operator"])
    assert result.exit_code == 0, result.output
    page = client.get("/ui/jobs")
    assert page.status_code == 302 and "/ui/login" in page.headers["Location"]
    form = {"payload": "p", "when": "now", "target_type": "queue", "queue_name": "default"}
    assert client.post("/ui/jobs/new", data=form).status_code == 302  # to the sign-in page
    assert client.get("/schedules", headers=bearer(make_key(app, "check"))).get_json() == []


def test_changing_the_admin_password_ends_sessions_opened_with_the_old_one(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(WTF_CSRF_ENABLED=False, ADMIN_PASSWORD="first")
    client = app.test_client()
    assert client.post("/ui/login", data={"secret": "first"}).status_code == 303
    assert client.get("/ui/jobs").status_code == 200
    app.config["ADMIN_PASSWORD"] = "second"
    assert client.get("/ui/jobs").status_code == 302
    assert client.post("/ui/login", data={"secret": "second"}).status_code == 303
    assert client.get("/ui/jobs").status_code == 200


def test_audit_page_lists_changes_escaped(client: FlaskClient) -> None:
    job = client.post("/schedules", json={"payload": "<script>x</script>", "minute": 1})
    job_id = job.get_json()["jobId"]
    client.post(f"/schedules/{job_id}/pause")
    client.delete(f"/schedules/{job_id}")
    html = client.get("/ui/audit").get_data(as_text=True)
    for action in ("create", "pause", "delete"):
        assert f'<span class="badge">{action}</span>' in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "anonymous" in html
    fragment = client.get("/ui/audit", headers={"HX-Request": "true", "HX-Target": "audit-table"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="audit-table"')


def test_failed_sign_ins_are_throttled_per_client_and_in_all(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(
        WTF_CSRF_ENABLED=False, ADMIN_PASSWORD="pw", SIGN_IN_LIMIT="3 per minute",
        SIGN_IN_LIMIT_ALL="5 per minute",
    )  # fmt: skip
    client = app.test_client()
    for _ in range(4):  # signing in is not a failure: it never counts
        assert client.post("/ui/login", data={"secret": "pw"}).status_code == 303
    tries = [client.post("/ui/login", data={"secret": f"guess {i}"}) for i in range(4)]
    assert [t.status_code for t in tries] == [200, 200, 200, 429]
    assert int(tries[-1].headers["Retry-After"]) > 0
    assert client.post("/ui/login", data={"secret": "pw"}).status_code == 429  # until it ends
    elsewhere = {"REMOTE_ADDR": "127.0.0.2"}
    answers = [
        client.post("/ui/login", data={"secret": "x"}, environ_base=elsewhere).status_code
        for _ in range(3)
    ]
    assert answers == [200, 200, 429]  # its own 3, but only 5 failures in all
    with app.test_client() as reader:
        entries = reader.get("/audit").get_json()
    failed = [e for e in entries if e["action"] == "sign-in failed"]
    assert len(failed) == 5
    assert {e["detail"] for e in failed} == {"from 127.0.0.1", "from 127.0.0.2"}
    assert not any("guess" in str(e) for e in entries)  # what was typed is never kept


def test_the_sign_in_page_shows_no_navigation_and_names_only_what_exists(
    make_app: Callable[..., Flask],
) -> None:
    keys_only = make_app(WTF_CSRF_ENABLED=False)
    make_key(keys_only, "svc")
    page = keys_only.test_client().get("/ui/login").get_data(as_text=True)
    assert 'class="main-nav"' not in page and "New job" not in page
    assert "admin password" not in page and ">API key<" in page
    wrong = keys_only.test_client().post("/ui/login", data={"secret": "nope"})
    assert "That is not an active API key." in wrong.get_data(as_text=True)
    with_password = make_app(WTF_CSRF_ENABLED=False, ADMIN_PASSWORD="pw")
    page = with_password.test_client().get("/ui/login").get_data(as_text=True)
    assert "API key or admin password" in page
