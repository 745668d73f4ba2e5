"""Holding a thread's lease while its loop runs: at most one loop per thread anywhere.

The store takes a lease atomically; a `LeaseKeeper` renews every lease this process holds
from one background thread (an LLM call can outlast the lease's ttl), and each holder
releases its lease when done. A process that dies stops renewing, so its leases expire
and another process picks the threads up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from .store import ConflictError, ThreadStore

log = logging.getLogger(__name__)


class ThreadBusyError(ConflictError):
    """Another loop holds the thread's lease: it is running right now."""


class Lease:
    def __init__(self, keeper: LeaseKeeper, thread_id: str, owner: str) -> None:
        self.thread_id = thread_id
        self.owner = owner
        self._keeper = keeper
        # Set when a renewal found the lease gone: someone else may run the thread now.
        self.lost = False
        self.released = False

    def release(self) -> None:
        """Idempotent; a holder releases exactly once however it stops."""
        if not self.released:
            self.released = True
            self._keeper._release(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class LeaseKeeper:
    def __init__(self, store: ThreadStore, ttl_s: float = 30.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._renewer: threading.Thread | None = None
        self._closed = False

    def try_acquire(self, thread_id: str) -> Lease | None:
        """The lease, or None if someone holds it; raises ThreadNotFoundError."""
        # A token per lease, not per process: a late release by a holder whose lease
        # expired and was retaken in the same process must not free the new holder's.
        owner = f"{self._prefix}:{uuid.uuid4().hex[:8]}"
        if not self.store.acquire_lease(thread_id, owner, self.ttl_s):
            return None
        lease = Lease(self, thread_id, owner)
        with self._lock:
            self._held[owner] = lease
            self._start_renewer()
        return lease

    def acquire(self, thread_id: str) -> Lease:
        lease = self.try_acquire(thread_id)
        if lease is None:
            raise ThreadBusyError(f"thread {thread_id} is running: another loop holds it")
        return lease

    def held(self) -> list[str]:
        with self._lock:
            return [lease.thread_id for lease in self._held.values()]

    def _release(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease.owner, None)
        try:
            self.store.release_lease(lease.thread_id, lease.owner)
        except Exception:  # the lease then simply expires
            log.exception("could not release the lease on thread %s", lease.thread_id)

    def _start_renewer(self) -> None:
        if self._renewer is None and not self._closed:
            self._renewer = threading.Thread(
                target=self._renew_forever, name="lease-renewer", daemon=True
            )
            self._renewer.start()

    def _renew_forever(self) -> None:
        # Renew at a third of the ttl: two renewals can fail before a lease expires.
        while not self._wake.wait(self.ttl_s / 3):
            with self._lock:
                leases = list(self._held.values())
            for lease in leases:
                try:
                    renewed = self.store.renew_lease(lease.thread_id, lease.owner, self.ttl_s)
                    if not renewed and not lease.released:  # released meanwhile: fine
                        lease.lost = True
                        log.warning("lost the lease on thread %s", lease.thread_id)
                except Exception:
                    log.exception("could not renew the lease on thread %s", lease.thread_id)

    def close(self) -> None:
        """Stop renewing; leases still held expire on their own."""
        self._closed = True
        self._wake.set()
