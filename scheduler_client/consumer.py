"""A consumer of the built-in queue: receive, handle, acknowledge.

While a batch is being handled, a keep-alive thread extends the visibility of the
messages not yet finished, so a slow handler does not see its message handed to another
consumer. A handler that raises leaves its message unacknowledged: it comes back after
its visibility timeout, as any message whose consumer died.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from scheduler_client.client import Client
from scheduler_client.errors import ProblemError
from scheduler_client.models import Message

log = logging.getLogger(__name__)
Handler = Callable[[Message], object]


class Consumer:
    def __init__(
        self,
        client: Client,
        queue: str = "default",
        *,
        visibility_timeout: float = 30.0,
        wait: float = 20.0,
        batch: int = 10,
        extend_every: float | None = None,
    ) -> None:
        self.client = client
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        self.wait = wait
        self.batch = batch
        # Well before the timeout ends, so one slow or failed extend call is survived.
        self.extend_every = extend_every or max(0.1, visibility_timeout / 3)

    def poll_once(self, handler: Handler) -> int:
        """One receive (a long poll); handle and acknowledge each message. Answers how
        many were handled without an error."""
        messages = self.client.receive(
            self.queue, max_messages=self.batch, visibility_timeout=self.visibility_timeout,
            wait=self.wait,
        )  # fmt: skip
        if not messages:
            return 0
        pending = {m.receipt for m in messages}
        lock = threading.Lock()
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_hidden, args=(pending, lock, done), daemon=True)
        keeper.start()
        handled = 0
        try:
            for message in messages:
                if self._handle(handler, message):
                    self.client.ack(self.queue, [message.receipt])
                    handled += 1
                with lock:
                    pending.discard(message.receipt)
        finally:
            done.set()
            keeper.join()
        return handled

    def run(self, handler: Handler, stop: threading.Event | None = None) -> None:
        """Poll until `stop` is set (checked between polls)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.poll_once(handler)

    def _handle(self, handler: Handler, message: Message) -> bool:
        try:
            handler(message)
        except Exception:
            log.exception(
                "handler failed; the message comes back after its visibility timeout",
                extra={"queue": self.queue, "message_id": message.id, "run_id": message.run_id},
            )
            return False
        return True

    def _keep_hidden(self, pending: set[str], lock: threading.Lock, done: threading.Event) -> None:
        while not done.wait(self.extend_every):
            with lock:
                receipts = sorted(pending)
            if not receipts:
                return
            try:
                self.client.extend(self.queue, receipts, self.visibility_timeout)
            except ProblemError as exc:  # try again at the next turn; the timeout still runs
                log.warning("extending visibility failed: %s", exc, extra={"queue": self.queue})
