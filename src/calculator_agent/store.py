"""Where threads live between steps and processes.

`ThreadStore` is the small interface the CLI and server use; `SQLiteStore` is the
embedded default (one file in the data dir). Writes are versioned compare-and-set:
`save` names the version it read, and fails with `ConflictError` if someone else
wrote in between, so two writers can never silently overwrite each other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .thread import Thread, UserInput, status


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


def _first_input(thread: Thread) -> str:
    for event in thread.events:
        if isinstance(event, UserInput):
            return event.text
    return ""


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
"""


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: safe across threads and processes; WAL plus a busy
        # timeout lets concurrent writers queue instead of failing with "database is locked".
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def create(self, thread: Thread) -> Stored:
        now = datetime.now(UTC).isoformat()
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO threads VALUES (?, 1, ?, ?, ?, ?, ?)",
                    (
                        thread.id,
                        status(thread).kind,
                        _first_input(thread),
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
        now = datetime.now(UTC).isoformat()
        with self._connect() as db:
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
