"""What a request does to threads, whatever carried it (a REST route or the webhook).

Every change that makes work due takes the thread's lease *before* writing, then hands
the lease to a background loop: so a second resume while a loop runs is refused, and
of many racing answers exactly one is written (the others get ThreadBusyError, or an
InvalidEventError once the thread no longer waits for what they answer).
"""

from __future__ import annotations

import time

from ..agent import InvalidEventError, step
from ..leases import Lease, ThreadBusyError
from ..prefetch import prefetch
from ..runner import Runner
from ..store import ConflictError, Stored
from ..thread import Event, UserInput, status
from .loops import LoopScheduler
from .schemas import Approve, Reject, Reply, answer_event

__all__ = ["InvalidEventError", "ThreadService"]

_SUBMIT_ATTEMPTS = 3


class ThreadService:
    def __init__(self, runner: Runner, scheduler: LoopScheduler, busy_wait_s: float = 1.0) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.busy_wait_s = busy_wait_s

    def launch(self, text: str, thread_id: str | None = None) -> Stored:
        """A new thread, its loop started in the background (ConflictError if the id exists)."""
        stored = self.runner.launch(text, thread_id)
        lease = self.runner.leases.try_acquire(stored.thread.id)
        if lease is not None:  # None: the recovery sweep got there first and runs it
            self.scheduler.start(lease)
        return stored

    def answer(self, thread_id: str, answer: Approve | Reject | Reply) -> Stored:
        return self._resume(thread_id, [answer_event(answer)])

    def add_message(self, thread_id: str, text: str) -> Stored:
        return self._resume(thread_id, [UserInput(text=text), *prefetch(text)])

    def fork(self, thread_id: str, at: int) -> tuple[Stored, bool]:
        """A copy of events 0..at; its loop starts at once if the copy has work due."""
        stored = self.runner.fork(thread_id, at)
        if status(stored.thread).kind != "running":
            return stored, False
        lease = self.runner.leases.try_acquire(stored.thread.id)
        if lease is not None:
            self.scheduler.start(lease)
        return stored, True

    def _resume(self, thread_id: str, events: list[Event]) -> Stored:
        # Judge the events first (ThreadNotFoundError, or InvalidEventError with the
        # reducer's reason), so a wrong answer says why rather than just "busy".
        thread = self.runner.store.get(thread_id).thread
        for event in events:
            thread = step(thread, event)
        lease = self._claim(thread_id)
        try:
            stored = self._submit(thread_id, events)
        except BaseException:
            lease.release()
            raise
        self.scheduler.start(lease)
        return stored

    def _submit(self, thread_id: str, events: list[Event]) -> Stored:
        # With the lease held, the only other writer is a bookkeeping note (a failed
        # notification): worth re-reading and re-judging rather than answering 409.
        for _ in range(_SUBMIT_ATTEMPTS - 1):
            try:
                return self.runner.submit(thread_id, *events)
            except ConflictError:
                continue
        return self.runner.submit(thread_id, *events)

    def _claim(self, thread_id: str) -> Lease:
        deadline = time.monotonic() + self.busy_wait_s
        while True:
            lease = self.runner.leases.try_acquire(thread_id)
            if lease is not None:
                return lease
            # A loop that has just paused may still be letting go of the lease: worth a
            # short wait. A thread whose status is running really is busy.
            current = status(self.runner.store.get(thread_id).thread)
            if current.kind == "running" or time.monotonic() >= deadline:
                raise ThreadBusyError(
                    f"thread {thread_id} is running: a loop holds it; try again once it pauses"
                )
            time.sleep(0.02)
