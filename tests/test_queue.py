"""The built-in queue through its HTTP API: receive, visibility timeout, ack, stats."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.process import build_dispatcher


def fire_jobs(client: FlaskClient, app: Flask, clock: ManualClock, n: int, queue: str) -> None:
    target = {"type": "queue", "name": queue}
    jobs = [{"payload": f"m{i}", "at": "2030-01-01T00:00:01Z", "target": target} for i in range(n)]
    assert client.post("/schedules:batch", json={"jobs": jobs}).status_code == 201
    clock.advance(1)
    with app.app_context():
        dispatcher: Dispatcher = build_dispatcher(app)
    while dispatcher.fire_due():
        pass
    dispatcher.close()


def receive(client: FlaskClient, queue: str, **body: float) -> list[dict[str, object]]:
    response = client.post(f"/queues/{queue}/receive", json=body)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["messages"])


def test_receive_hide_return_and_ack(client: FlaskClient, app: Flask, clock: ManualClock) -> None:
    fire_jobs(client, app, clock, 3, "orders")
    first = receive(client, "orders", max=2, visibilityTimeout=30)
    assert [m["payload"] for m in first] == ["m0", "m1"] or len(first) == 2
    assert {m["receiveCount"] for m in first} == {1}
    assert all(m["runId"] and m["jobId"] and m["scheduledFor"] for m in first)
    stats = client.get("/queues/orders").get_json()
    assert (stats["depth"], stats["inFlight"]) == (1, 2)

    clock.advance(31)  # not acknowledged: they come back
    again = receive(client, "orders", max=10, visibilityTimeout=30)
    assert len(again) == 3
    returned = {m["id"]: m for m in again}
    assert all(returned[m["id"]]["receiveCount"] == 2 for m in first)

    stale = client.post("/queues/orders/ack", json={"receipts": [m["receipt"] for m in first]})
    assert stale.get_json() == {"deleted": 0}
    fresh = client.post("/queues/orders/ack", json={"receipts": [m["receipt"] for m in again]})
    assert fresh.get_json() == {"deleted": 3}
    assert client.get("/queues/orders").get_json()["depth"] == 0


def test_queues_are_separate(client: FlaskClient, app: Flask, clock: ManualClock) -> None:
    fire_jobs(client, app, clock, 2, "a")
    assert receive(client, "b") == []
    assert len(receive(client, "a")) == 2


def test_bad_queue_requests(client: FlaskClient) -> None:
    response = client.post("/queues/a/receive", json={"max": 0})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "max"
    assert client.post("/queues/a/ack", json={"receipts": []}).status_code == 422
    assert client.get("/queues/bad%20name").status_code == 400


def test_extend_keeps_a_message_hidden(client: FlaskClient, app: Flask, clock: ManualClock) -> None:
    fire_jobs(client, app, clock, 1, "work")
    [held] = receive(client, "work", visibilityTimeout=10)
    clock.advance(8)
    extended = client.post(
        "/queues/work/extend", json={"receipts": [held["receipt"]], "visibilityTimeout": 10}
    )
    assert extended.get_json() == {"extended": 1}
    clock.advance(8)  # 16 s after the receive: hidden still, by the extension
    assert receive(client, "work") == []
    clock.advance(3)
    [back] = receive(client, "work")
    assert back["id"] == held["id"]
    stale = client.post("/queues/work/extend", json={"receipts": [held["receipt"]]})
    assert stale.get_json() == {"extended": 0}  # a receipt replaced by a later receive
    assert client.post("/queues/work/extend", json={"receipts": []}).status_code == 422


def test_a_receipt_is_plain_hex_safe_on_any_command_line(
    client: FlaskClient, app: Flask, clock: ManualClock
) -> None:
    """A receipt once began with "-" one time in 64, and `scheduler queue ack` took it for
    an option: receipts are now hex digits only."""
    fire_jobs(client, app, clock, 50, "plain")
    receipts = [str(m["receipt"]) for m in receive(client, "plain", max=50)]
    assert len(receipts) == 50
    assert all(len(r) == 48 and set(r) <= set("0123456789abcdef") for r in receipts)
