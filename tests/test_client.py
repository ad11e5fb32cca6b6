"""scheduler_client against the real service: gunicorn and the scheduler process."""

from __future__ import annotations

import socket
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from scheduler_client import Client, Consumer, Message, ProblemError, RetryPolicy
from tests.support.processes import free_port, wait_until
from tests.support.service import Service, create_key, start_service

pytestmark = pytest.mark.slow
DUE = "2020-01-01T00:00:00Z"  # in the past: a one-shot fires at once
LATER = "2099-01-01T00:00:00Z"


@pytest.fixture
def client(service: Service) -> Client:
    with Client(service.url) as made:
        yield made  # type: ignore[misc]


def a_label() -> dict[str, str]:
    return {"test": uuid.uuid4().hex[:12]}


def test_jobs_create_get_update_pause_resume_delete(client: Client) -> None:
    job = client.create_job(
        {"payload": "p", "recurring": "cron", "cron": "0 9 * * MON-FRI",
         "timezone": "Europe/Berlin", "name": "report", "labels": a_label()}
    )  # fmt: skip
    assert job.status == "active" and job.cron == "0 9 * * MON-FRI"
    assert job.next_run_at and "09:00" in job.description
    assert client.get_job(job.job_id) == job

    changed = client.update_job(job.job_id, job.spec() | {"payload": "q", "name": "renamed"})
    assert (changed.payload, changed.name, changed.job_id) == ("q", "renamed", job.job_id)

    paused = client.pause_job(job.job_id, note="maintenance")
    assert paused.status == "paused" and paused.raw["pauseNote"] == "maintenance"
    assert client.resume_job(job.job_id).status == "active"

    assert client.delete_job(job.job_id).job_id == job.job_id
    with pytest.raises(ProblemError) as gone:
        client.get_job(job.job_id)
    assert (gone.value.status, gone.value.title) == (404, "Not found")


def test_a_bad_request_is_one_exception_naming_the_field(client: Client) -> None:
    with pytest.raises(ProblemError) as bad:
        client.create_job({"payload": "p", "recurring": "cron", "cron": "61 * * * *"})
    assert bad.value.status == 422
    assert "cron" in bad.value.field_errors()
    assert "cron" in str(bad.value)


def test_list_follows_the_link_header_page_by_page(client: Client) -> None:
    labels = a_label()
    made = client.create_jobs(
        [{"payload": f"j{i}", "at": LATER, "labels": labels} for i in range(5)]
    )
    first = client.jobs_page(labels=labels, limit=2)
    assert len(first.items) == 2 and first.next_url
    listed = list(client.list_jobs(labels=labels, limit=2))  # three pages
    assert sorted(j.job_id for j in listed) == sorted(j.job_id for j in made)
    assert [j.payload for j in client.list_jobs(labels=labels, q="j3")] == ["j3"]


def test_batch_is_all_or_none_and_bulk_actions_act_on_labels(client: Client) -> None:
    labels = a_label()
    with pytest.raises(ProblemError) as bad:
        client.create_jobs(
            [{"payload": "a", "at": LATER, "labels": labels},
             {"payload": "b", "recurring": "cron", "cron": "nope", "labels": labels}]
        )  # fmt: skip
    assert any(e.field.startswith("jobs.1") for e in bad.value.errors)
    assert list(client.list_jobs(labels=labels)) == []  # none half-made

    made = client.create_jobs(
        [{"payload": str(i), "at": LATER, "labels": labels} for i in range(3)]
    )
    ids = [j.job_id for j in made]
    paused = client.pause_jobs(labels=labels)
    assert paused.changed == 3 and sorted(paused.changed_ids) == sorted(ids)
    again = client.pause_jobs(ids[:1])
    assert (again.changed, again.unchanged_ids) == (0, ids[:1])
    assert client.resume_jobs(ids).changed == 3
    missing = str(uuid.uuid4())
    deleted = client.delete_jobs([*ids, missing])
    assert (deleted.changed, deleted.not_found) == (3, [missing])


def test_an_idempotency_key_creates_once(client: Client) -> None:
    labels = a_label()
    key = f"client-test-{uuid.uuid4()}"
    first = client.create_job(
        {"payload": "once", "at": LATER, "labels": labels}, idempotency_key=key
    )
    second = client.create_job(
        {"payload": "once", "at": LATER, "labels": labels}, idempotency_key=key
    )
    assert first.job_id == second.job_id
    assert len(list(client.list_jobs(labels=labels))) == 1


def test_runs_list_get_and_retry_a_dead_run(client: Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on: every delivery fails
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    job = client.create_job(
        {"payload": "x", "at": DUE, "target": {"type": "webhook", "url": dead_url},
         "retry": {"attempts": 1}}
    )  # fmt: skip
    wait_until(lambda: [r.status for r in client.list_runs(job_id=job.job_id)] == ["dead"], 30)
    [run] = client.list_runs(job_id=job.job_id)
    assert run.last_error and run.attempts == 1
    assert run.run_id in {r.run_id for r in client.list_runs(status="dead")}
    assert client.get_run(run.run_id) == run
    retried = client.retry_run(run.run_id)
    assert retried.run_id == run.run_id and retried.status != "dead"

    fired = client.run_job(job.job_id)  # run now: a second run of the job
    assert fired.job_id == job.job_id and fired.run_id != run.run_id
    audit = [entry.action for entry in client.list_audit(job_id=job.job_id)]
    assert "create" in audit


def test_preview_says_the_rule_in_words(client: Client) -> None:
    preview = client.preview(
        "daily", at="2030-03-30T01:30:00Z", timezone="Europe/Berlin", count=3,
        after="2030-03-29T00:00:00Z",
    )  # fmt: skip
    assert preview.timezone == "Europe/Berlin" and preview.description
    assert [t.utc for t in preview.times] == [
        "2030-03-30T01:30:00Z",
        "2030-03-31T01:00:00Z",
        "2030-04-01T00:30:00Z",
    ]  # fmt: skip  (02:30 does not exist on the 31st: the first instant after the gap)
    assert preview.times[1].notes == ("dst-shift",) and preview.times[1].explain == ()
    explained = client.preview(
        "rrule", rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=30", at="2030-03-29T01:30:00Z",
        timezone="Europe/Berlin", after="2030-03-30T12:00:00Z", count=1, explain=True,
    )  # fmt: skip
    [shifted] = explained.times
    assert shifted.utc == "2030-03-31T01:00:00Z" and "clocks go forward" in shifted.explain[0]


def test_preview_of_a_whole_job_and_of_a_stored_one(client: Client) -> None:
    spec = {
        "recurring": "daily",
        "at": "2030-12-23T09:00:00Z",
        "exclude": {"dates": ["2030-12-25"]},
    }
    preview = client.preview_spec(spec, after="2030-12-23T10:00:00Z", count=3, explain=True)
    assert [(t.utc, t.skipped) for t in preview.times] == [
        ("2030-12-24T09:00:00Z", False), ("2030-12-25T09:00:00Z", True),
        ("2030-12-26T09:00:00Z", False),
    ]  # fmt: skip
    assert preview.times[1].notes and preview.times[1].explain
    with pytest.raises(ProblemError) as bad:
        client.preview_spec(spec | {"exclude": {"dates": ["not a date"]}})
    assert bad.value.status == 422 and any("exclude" in f for f in bad.value.field_errors())
    job = client.create_job({"payload": "p", "labels": a_label(), **spec})
    stored = client.preview_job(job.job_id, count=2)
    assert [t.utc for t in stored.times] == [job.next_run_at, "2030-12-24T09:00:00Z"]


def test_consumer_keeps_a_slow_message_hidden_then_acks(client: Client) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    client.create_job({"payload": "work", "at": DUE, "target": {"type": "queue", "name": queue}})
    seen: list[Message] = []
    peeks: list[int] = []

    def handler(message: Message) -> None:
        seen.append(message)
        # Three visibility timeouts long: without the keep-alive it would come back.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            peeks.append(len(client.receive(queue, visibility_timeout=1)))
            time.sleep(0.2)

    consumer = Consumer(client, queue, visibility_timeout=1.0, wait=10)
    assert consumer.poll_once(handler) == 1
    assert [m.payload for m in seen] == ["work"]
    assert peeks and set(peeks) == {0}, "another receive got the message being handled"
    stats = client.queue_stats(queue)
    assert (stats.depth, stats.in_flight) == (0, 0)


def test_a_failing_handler_leaves_the_message_to_come_back(client: Client) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    client.create_job({"payload": "w", "at": DUE, "target": {"type": "queue", "name": queue}})

    def boom(_message: Message) -> None:
        raise RuntimeError("handler broke")

    consumer = Consumer(client, queue, visibility_timeout=0.5, wait=10)
    assert consumer.poll_once(boom) == 0
    got: list[str] = []
    wait_until(lambda: consumer.poll_once(lambda m: got.append(m.payload)) == 1, 10)
    assert got == ["w"]
    stats = client.queue_stats(queue)
    assert (stats.depth, stats.in_flight) == (0, 0)


def test_429_answers_are_waited_out(db_kind: str, template_db: str, tmp_path: Path) -> None:
    from tests.conftest import copy_of_template

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with copy_of_template(db_kind, template_db, tmp_path) as url, ExitStack() as stack:
        # Open loopback is never limited, a key is: 3 a second in each of the 2 workers.
        slow = start_service(
            stack, url, tmp_path, REQUIRE_API_KEYS="true", RATE_LIMIT="3 per second"
        )
        key = create_key(slow.env, "burst")
        policy = RetryPolicy(attempts=10, backoff=0.1)
        with Client(slow.url, key, retry=policy, sleep=sleep) as limited:
            for i in range(10):
                limited.create_job({"payload": f"r{i}", "at": LATER})
            assert len(list(limited.list_jobs())) == 10  # each made once, retries and all
    assert waits, "the rate limit never answered 429: make the burst larger"


def test_connection_failures_are_retried_then_reported(
    db_kind: str, template_db: str, tmp_path: Path
) -> None:
    from tests.conftest import copy_of_template

    port = free_port()
    with Client(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=2, backoff=0.01)) as c:
        with pytest.raises(ProblemError) as down:
            c.queue_stats()
        assert down.value.status is None and "unreachable" in str(down.value)

    with copy_of_template(db_kind, template_db, tmp_path) as url, ExitStack() as stack:
        started: list[Service] = []

        def start_while_waiting(_seconds: float) -> None:
            if not started:  # the service comes up on that port while the client waits
                started.append(start_service(stack, url, tmp_path, port=port))

        with Client(f"http://127.0.0.1:{port}", sleep=start_while_waiting) as early:
            job = early.create_job({"payload": "after a refused connection", "at": LATER})
            assert started and early.get_job(job.job_id).payload == job.payload
            assert len(list(early.list_jobs())) == 1


def test_keys_are_sent_and_a_missing_one_is_a_problem(
    db_kind: str, template_db: str, tmp_path: Path
) -> None:
    from tests.conftest import copy_of_template

    with copy_of_template(db_kind, template_db, tmp_path) as url, ExitStack() as stack:
        env_service = start_service(stack, url, tmp_path, REQUIRE_API_KEYS="true")
        key = create_key(env_service.env, "client-test")
        with Client(env_service.url) as anonymous, pytest.raises(ProblemError) as refused:
            anonymous.queue_stats()
        assert refused.value.status == 401
        with Client(env_service.url, api_key=key) as keyed:
            job = keyed.create_job({"payload": "k", "at": LATER})
            assert keyed.get_job(job.job_id).payload == "k"
            assert [e.actor for e in keyed.list_audit(job_id=job.job_id)] == ["key:client-test"]


def test_the_scheduler_process_counts_its_passes(service: Service) -> None:
    """scheduler_passes_total, which the "not passing" alert watches, rises while it runs."""
    import httpx

    def passes() -> float:
        text = httpx.get(f"{service.url}/metrics", timeout=5).text
        [line] = [t for t in text.splitlines() if t.startswith("scheduler_passes_total ")]
        return float(line.split()[1])

    first = passes()
    wait_until(lambda: passes() >= first + 2, 30)  # written every 10 s
