"""Launch, answer and advance stored threads: the loop wired to a store.

Every event is saved as soon as it is appended (compare-and-set on the version read),
so any process can pick a thread up by id, and two writers cannot both win. A loop runs
only while holding the thread's lease, so at most one loop runs per thread anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .agent import NextStep, OnEvent, run_until_pause, step
from .leases import Lease, LeaseKeeper, ThreadBusyError
from .prefetch import prefetch
from .store import ConflictError, Stored, ThreadStore
from .thread import Event, Thread, ToolStarted, UserInput
from .tools import Toolbox

# Ids chosen by callers (an external ticket number...) must be safe in URLs and logs.
THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_THREAD_ID = re.compile(THREAD_ID_PATTERN)


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """The process is shutting down: the loop stops at the next saved event."""


@dataclass
class Runner:
    store: ThreadStore
    next_step: NextStep
    tools: Toolbox
    max_steps: int = 10
    max_errors: int = 3
    lease_ttl_s: float = 30.0
    leases: LeaseKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.store, self.lease_ttl_s)

    def launch(self, text: str, thread_id: str | None = None) -> Stored:
        """A new thread from a human's request, with deterministic context pre-fetched."""
        if thread_id is not None and not _THREAD_ID.match(thread_id):
            raise ValueError(f"thread id {thread_id!r} must match {THREAD_ID_PATTERN}")
        thread = step(Thread() if thread_id is None else Thread(id=thread_id), UserInput(text=text))
        for event in prefetch(text):
            thread = step(thread, event)
        return self.store.create(thread)

    def submit(self, thread_id: str, event: Event, *more: Event) -> Stored:
        """Append a human's event (answer, approval, new input) if the thread takes it;
        several events are saved together or not at all."""
        stored = self.store.get(thread_id)
        thread = stored.thread
        for each in (event, *more):
            thread = step(thread, each)
        return self.store.save(thread, stored.version)

    def claim(self, thread_id: str) -> Lease:
        """The thread's lease, for a loop about to run; ThreadBusyError if one runs."""
        return self.leases.acquire(thread_id)

    def advance(
        self,
        thread_id: str,
        on_event: OnEvent | None = None,
        *,
        lease: Lease | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Thread:
        """Run the loop on a stored thread until it pauses, saving every event.

        Holds the thread's lease throughout: the one given (the caller releases it) or
        one taken here (ThreadBusyError if another loop runs the thread). `should_stop`
        is asked after each saved event, so a shutdown stops at a clean boundary.
        """
        if lease is None:
            with self.claim(thread_id) as own:
                return self._advance(thread_id, own, on_event, should_stop)
        return self._advance(thread_id, lease, on_event, should_stop)

    def _advance(
        self,
        thread_id: str,
        lease: Lease,
        on_event: OnEvent | None,
        should_stop: Callable[[], bool] | None,
    ) -> Thread:
        stored = self.store.get(thread_id)
        version = stored.version
        latest = stored.thread

        def persist(thread: Thread, event: Event) -> None:
            nonlocal version, latest
            if lease.lost:  # someone may have taken the thread over: write nothing more
                raise ThreadBusyError(f"lost the lease on thread {thread_id}")
            version = self.store.save(thread, version).version
            latest = thread
            if on_event is not None:
                on_event(thread, event)
            # Never between a tool's start and its result: that would leave its outcome
            # unknown for no reason.
            if should_stop is not None and not isinstance(event, ToolStarted) and should_stop():
                raise StopRequested

        try:
            return run_until_pause(
                stored.thread,
                self.next_step,
                self.tools,
                max_steps=self.max_steps,
                max_errors=self.max_errors,
                on_event=persist,
            )
        except StopRequested:
            return latest

    def note(self, thread_id: str, event: Event, applies: Callable[[Thread], bool]) -> bool:
        """Append a bookkeeping event the reducer need not judge (a failed notification),
        as long as `applies` to the latest thread; retried on concurrent writes."""
        for _ in range(5):
            stored = self.store.get(thread_id)
            if not applies(stored.thread):
                return False
            try:
                self.store.save(stored.thread.append(event), stored.version)
            except ConflictError:
                continue
            return True
        return False

    def fork(self, thread_id: str, at: int) -> Stored:
        """A new thread with events 0..at (inclusive) of an existing one."""
        source = self.store.get(thread_id).thread
        if not 0 <= at < len(source.events):
            raise IndexError(f"--at must be between 0 and {len(source.events) - 1}")
        return self.store.create(Thread(events=source.events[: at + 1]))
