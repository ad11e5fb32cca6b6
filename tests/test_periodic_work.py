"""The scheduler process's periodic work at a stop: the run in hand ends, a run queued
behind it returns at once, and nothing is left waiting (the interpreter joins those
threads at exit, so one left waiting kept a stopped scheduler alive until killed)."""

from __future__ import annotations

import threading

from flask import Flask

from app.scheduler.process import PeriodicWork
from app.scheduler.wake import Stopping


def test_a_run_queued_at_the_stop_returns_and_the_wait_ends(app: Flask) -> None:
    stopping = Stopping()
    periodic = PeriodicWork(app, stopping)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        started.set()
        release.wait(10)

    run = periodic.guarded("deliver", work)
    in_hand = threading.Thread(target=run)
    in_hand.start()
    assert started.wait(5)
    queued = threading.Thread(target=run)  # the next tick's run, waiting for the lock
    queued.start()

    stopping.set()
    waiting = threading.Thread(target=periodic.wait_ended, args=(10,))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive(), "the wait lasts while the run in hand goes on"
    release.set()
    for thread in (waiting, in_hand, queued):
        thread.join(5)
        assert not thread.is_alive()
    assert calls == [1]  # the queued run did no work


def test_the_wait_gives_up_after_its_timeout(app: Flask) -> None:
    stopping = Stopping()
    periodic = PeriodicWork(app, stopping)
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(10)

    in_hand = threading.Thread(target=periodic.guarded("fire", work))
    in_hand.start()
    assert started.wait(5)
    stopping.set()
    waiting = threading.Thread(target=periodic.wait_ended, args=(0.2,))
    waiting.start()
    waiting.join(5)
    assert not waiting.is_alive()
    release.set()
    in_hand.join(5)
