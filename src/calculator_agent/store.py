"""Where threads live between steps and processes.

`ThreadStore` is the small interface the CLI and server use; `SQLiteStore` is the
embedded default (one file in the data dir) and `PostgresStore` (postgres_store.py) the
shared one, chosen by `open_store` from the `database_url` setting.

Writes are versioned compare-and-set: `save` names the version it read, and fails with
`ConflictError` if someone else wrote in between, so two writers can never silently
overwrite each other. Leases say which loop runs a thread: taking one is atomic, so at
most one loop runs per thread across processes, and a crashed holder's lease expires.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .thread import Thread, UserInput, status

if TYPE_CHECKING:
    from .settings import Settings


class ThreadNotFoundError(KeyError):
    pass


class ConflictError(Exception):
    """The thread changed since it was read: reload and retry (or give up)."""


@dataclass(frozen=True)
class Stored:
    thread: Thread
    version: int


@dataclass(frozen=True)
class Summary:
    id: str
    status: str
    version: int
    updated_at: datetime
    first_input: str


class ThreadStore(Protocol):
    def create(self, thread: Thread) -> Stored: ...

    def get(self, thread_id: str) -> Stored: ...

    def save(self, thread: Thread, expected_version: int) -> Stored: ...

    def list(self, status: str | None = None, limit: int = 50) -> list[Summary]: ...

    # Leases: who runs a thread's loop. `owner` is a token unique to one holder.
    def acquire_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        """Take the lease if nobody holds a live one; raises ThreadNotFoundError."""
        ...

    def renew_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        """Extend a lease this owner holds; False if it was lost (expired and taken)."""
        ...

    def release_lease(self, thread_id: str, owner: str) -> None: ...

    def is_leased(self, thread_id: str) -> bool: ...

    def recoverable(self, idle_s: float, limit: int = 100) -> builtins.list[str]:
        """Running threads nobody holds a live lease on, untouched for idle_s seconds."""
        ...

    def remember(self, key: str, ttl_s: float) -> bool:
        """Record `key` for ttl_s seconds; False if it was already there (a replay)."""
        ...

    def close(self) -> None: ...


def first_input(thread: Thread) -> str:
    for event in thread.events:
        if isinstance(event, UserInput):
            return event.text
    return ""


def open_store(settings: Settings) -> ThreadStore:
    """The store the `database_url` setting names: empty is the embedded SQLite file."""
    url = settings.database_url.strip()
    if not url:
        return SQLiteStore(settings.db_path)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres_store import PostgresStore  # psycopg loads only when used

        return PostgresStore(url)
    raise ValueError(
        "AGENT_DATABASE_URL must be empty (SQLite in the data dir), sqlite:///PATH or "
        f"postgresql://..., not {url.split('://')[0]}://..."
    )


def _iso(moment: datetime) -> str:
    # Fixed width, so text order is time order in SQL comparisons.
    return moment.isoformat(timespec="microseconds")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,          -- derived from the events; kept for filtering
    first_input TEXT NOT NULL,
    body TEXT NOT NULL,            -- the thread as JSON: the source of truth
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_status ON threads (status, updated_at);
CREATE TABLE IF NOT EXISTS thread_leases (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL       -- unix time; same-host clock, as SQLite is one file
);
CREATE TABLE IF NOT EXISTS seen_keys (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Writers in this process queue here, on a mutex that wakes the next at once;
        # SQLite's own busy handler sleeps in steps of up to 100 ms. Other processes
        # still meet at SQLite's lock (the busy timeout).
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._writing() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per thread, kept open: opening one per operation (and re-reading
        # the schema) cost more than the write itself. WAL plus a busy timeout lets
        # writers in other processes queue instead of failing with "database is locked".
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        yield db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._connect() as db:
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front: check-then-write is atomic.
        with self._writing() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()

    def create(self, thread: Thread) -> Stored:
        now = _iso(datetime.now(UTC))
        with self._writing() as db:
            try:
                db.execute(
                    "INSERT INTO threads VALUES (?, 1, ?, ?, ?, ?, ?)",
                    (
                        thread.id,
                        status(thread).kind,
                        first_input(thread),
                        thread.to_json(),
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"thread {thread.id} already exists") from None
        return Stored(thread, 1)

    def get(self, thread_id: str) -> Stored:
        with self._connect() as db:
            row = db.execute(
                "SELECT body, version FROM threads WHERE id = ?", (thread_id,)
            ).fetchone()
        if row is None:
            raise ThreadNotFoundError(thread_id)
        return Stored(Thread.from_json(row[0]), row[1])

    def save(self, thread: Thread, expected_version: int) -> Stored:
        now = _iso(datetime.now(UTC))
        with self._writing() as db:
            cursor = db.execute(
                "UPDATE threads SET body = ?, status = ?, version = version + 1, updated_at = ?"
                " WHERE id = ? AND version = ?",
                (thread.to_json(), status(thread).kind, now, thread.id, expected_version),
            )
            if cursor.rowcount == 0:
                exists = db.execute("SELECT 1 FROM threads WHERE id = ?", (thread.id,)).fetchone()
                if exists is None:
                    raise ThreadNotFoundError(thread.id)
                raise ConflictError(
                    f"thread {thread.id} changed since version {expected_version} was read"
                )
        return Stored(thread, expected_version + 1)

    def list(self, status: str | None = None, limit: int = 50) -> list[Summary]:
        query = "SELECT id, status, version, updated_at, first_input FROM threads"
        params: tuple[object, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        query += " ORDER BY updated_at DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(query, (*params, limit)).fetchall()
        return [
            Summary(
                id=r[0],
                status=r[1],
                version=r[2],
                updated_at=datetime.fromisoformat(r[3]),
                first_input=r[4],
            )
            for r in rows
        ]

    # --- leases -------------------------------------------------------------------------

    def acquire_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM threads WHERE id = ?", (thread_id,)).fetchone() is None:
                raise ThreadNotFoundError(thread_id)
            cursor = db.execute(
                "INSERT INTO thread_leases VALUES (?, ?, ?) ON CONFLICT (thread_id) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE thread_leases.expires_at < ?",
                (thread_id, owner, now + ttl_s, now),
            )
            return cursor.rowcount == 1

    def renew_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        with self._writing() as db:
            cursor = db.execute(
                "UPDATE thread_leases SET expires_at = ? WHERE thread_id = ? AND owner = ?",
                (time.time() + ttl_s, thread_id, owner),
            )
            return cursor.rowcount == 1

    def release_lease(self, thread_id: str, owner: str) -> None:
        with self._writing() as db:
            db.execute(
                "DELETE FROM thread_leases WHERE thread_id = ? AND owner = ?", (thread_id, owner)
            )

    def is_leased(self, thread_id: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM thread_leases WHERE thread_id = ? AND expires_at >= ?",
                (thread_id, time.time()),
            ).fetchone()
        return row is not None

    def recoverable(self, idle_s: float, limit: int = 100) -> builtins.list[str]:
        idle_since = _iso(datetime.fromtimestamp(time.time() - idle_s, UTC))
        with self._connect() as db:
            rows = db.execute(
                "SELECT t.id FROM threads t LEFT JOIN thread_leases l"
                " ON l.thread_id = t.id AND l.expires_at >= ?"
                " WHERE t.status = 'running' AND l.thread_id IS NULL AND t.updated_at <= ?"
                " ORDER BY t.updated_at LIMIT ?",
                (time.time(), idle_since, limit),
            ).fetchall()
        return [row[0] for row in rows]

    # --- replay protection --------------------------------------------------------------

    def remember(self, key: str, ttl_s: float) -> bool:
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM seen_keys WHERE expires_at < ?", (now,))
            cursor = db.execute(
                "INSERT INTO seen_keys VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, now + ttl_s),
            )
            return cursor.rowcount == 1
