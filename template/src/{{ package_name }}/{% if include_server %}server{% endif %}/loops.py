"""Background loops: each runs one thread until it pauses, holding the thread's lease.

LLM calls and store writes are blocking, so loops run on a thread pool, never on the
event loop. A loop that pauses for a human hands its thread to the notifier. `recover`
picks up in-flight threads nobody holds (a crashed process's, or ones the CLI left).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..leases import Lease
from ..runner import Runner
from ..store import ConflictError
from ..thread import Error, Event, NotificationFailed, Thread, ToolStarted, status
from .notify import Notifier, notification
from .schemas import waiting_for

log = logging.getLogger(__name__)

# A running thread untouched this long with no lease is an orphan: the grace lets the
# process that just launched it take its lease first.
ORPHAN_AFTER_S = 1.0


class LoopScheduler:
    def __init__(
        self,
        runner: Runner,
        *,
        max_loops: int = 8,
        notifier: Notifier | None = None,
        public_url: str = "",
    ) -> None:
        self.runner = runner
        self.notifier = notifier
        self.public_url = public_url
        self._loops = ThreadPoolExecutor(max_loops, thread_name_prefix="agent-loop")
        # Deliveries retry with backoff: on their own pool, so they never hold up loops.
        self._deliveries = ThreadPoolExecutor(4, thread_name_prefix="agent-notify")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0  # loops queued or running, plus deliveries in flight

    @property
    def busy(self) -> int:
        with self._lock:
            return self._pending

    def start(self, lease: Lease) -> None:
        """Run the leased thread's loop in the background; the loop releases the lease."""
        if self._stopping.is_set():
            lease.release()
            return
        self._track(+1)
        self._loops.submit(self._run, lease)

    def recover(self) -> list[str]:
        """Start a loop for every in-flight thread nobody holds; returns their ids."""
        started = []
        for thread_id in self.runner.store.recoverable(ORPHAN_AFTER_S):
            if self._stopping.is_set():
                break
            lease = self.runner.leases.try_acquire(thread_id)
            if lease is not None:
                log.info("picking up thread %s", thread_id)
                self.start(lease)
                started.append(thread_id)
        return started

    def close(self) -> None:
        """Stop taking work; running loops stop at their next saved event."""
        self._stopping.set()
        self._loops.shutdown(wait=True)
        self._deliveries.shutdown(wait=True)
        if self.notifier is not None:
            self.notifier.close()

    def _track(self, delta: int) -> None:
        with self._lock:
            self._pending += delta

    def _run(self, lease: Lease) -> None:
        try:
            thread = None
            try:
                if not self._stopping.is_set():  # queued before a shutdown: leave it
                    thread = self._advance(lease)
            finally:
                lease.release()
            if thread is not None and self.notifier is not None and waiting_for(thread):
                self._track(+1)
                self._deliveries.submit(self._notify, thread)
        finally:
            self._track(-1)

    def _advance(self, lease: Lease) -> Thread | None:
        """The thread after the loop, or None when the loop wrote nothing (it found the
        thread already paused, say, so nobody needs notifying again) or failed."""
        produced: list[Event] = []
        try:
            thread = self.runner.advance(
                lease.thread_id,
                lambda _, event: produced.append(event),
                lease=lease,
                should_stop=self._stopping.is_set,
            )
            return thread if produced else None
        except ConflictError as exc:
            # Someone else wrote the thread (a loop that took over an expired lease): it
            # is theirs now; CAS kept our write from clobbering theirs.
            log.warning("stopped the loop on thread %s: %s", lease.thread_id, exc)
        except Exception as exc:
            log.exception("the loop on thread %s crashed", lease.thread_id)
            self._record_crash(lease.thread_id, exc)
        return None

    def _record_crash(self, thread_id: str, exc: Exception) -> None:
        """Put an unexpected failure in the thread as an error event (factor 9): the next
        pick-up retries, and consecutive errors end in a question to a human."""

        def applies(thread: Thread) -> bool:
            # After a ToolStarted the outcome is unknown: leave that for a human, never
            # let an error event make the model pick the tool again.
            last = thread.events[-1] if thread.events else None
            return status(thread).kind == "running" and not isinstance(last, ToolStarted)

        message = f"the loop crashed: {type(exc).__name__}: {exc}"[:200]
        try:
            self.runner.note(thread_id, Error(source="system", message=message), applies)
        except Exception:
            log.exception("could not record the crash in thread %s", thread_id)

    def _notify(self, thread: Thread) -> None:
        try:
            payload = notification(thread, self.public_url)
            assert self.notifier is not None
            assert payload is not None
            outcome = self.notifier.deliver(payload)
            if outcome.ok:
                return
            call_id = payload["call_id"]
            failed = NotificationFailed(
                call_id=call_id,
                url=self.notifier.url,
                attempts=outcome.attempts,
                error=outcome.error or "unknown error",
            )

            def still_pending(latest: Thread) -> bool:
                pending = waiting_for(latest)
                return pending is not None and pending.call_id == call_id

            if not self.runner.note(thread.id, failed, still_pending):
                log.info("notification for %s failed after it was answered", thread.id)
        except Exception:
            log.exception("notifying about thread %s failed", thread.id)
        finally:
            self._track(-1)
