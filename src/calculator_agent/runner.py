"""Launch, answer and advance stored threads: the loop wired to a store.

Every event is saved as soon as it is appended (compare-and-set on the version read),
so any process can pick a thread up by id, and two writers cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass

from .agent import NextStep, OnEvent, run_until_pause, step
from .prefetch import prefetch
from .store import Stored, ThreadStore
from .thread import Event, Thread, UserInput
from .tools import Toolbox


@dataclass
class Runner:
    store: ThreadStore
    next_step: NextStep
    tools: Toolbox
    max_steps: int = 10
    max_errors: int = 3

    def launch(self, text: str) -> Stored:
        """A new thread from a human's request, with deterministic context pre-fetched."""
        thread = step(Thread(), UserInput(text=text))
        for event in prefetch(text):
            thread = step(thread, event)
        return self.store.create(thread)

    def submit(self, thread_id: str, event: Event) -> Stored:
        """Append a human's event (answer, approval, new input) if the thread takes it."""
        stored = self.store.get(thread_id)
        return self.store.save(step(stored.thread, event), stored.version)

    def advance(self, thread_id: str, on_event: OnEvent | None = None) -> Thread:
        """Run the loop on a stored thread until it pauses, saving every event."""
        stored = self.store.get(thread_id)
        version = stored.version

        def persist(thread: Thread, event: Event) -> None:
            nonlocal version
            version = self.store.save(thread, version).version
            if on_event is not None:
                on_event(thread, event)

        return run_until_pause(
            stored.thread,
            self.next_step,
            self.tools,
            max_steps=self.max_steps,
            max_errors=self.max_errors,
            on_event=persist,
        )

    def fork(self, thread_id: str, at: int) -> Stored:
        """A new thread with events 0..at (inclusive) of an existing one."""
        source = self.store.get(thread_id).thread
        if not 0 <= at < len(source.events):
            raise IndexError(f"--at must be between 0 and {len(source.events) - 1}")
        return self.store.create(Thread(events=source.events[: at + 1]))
