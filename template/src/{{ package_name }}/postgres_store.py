"""The shared store: threads, leases and replay keys in PostgreSQL (psycopg 3).

Same contract as `SQLiteStore`, for several server processes (or hosts) on one database.
Compare-and-set is `UPDATE ... WHERE version = %s`: under READ COMMITTED a concurrent
writer waits for the first to commit, re-checks the row and updates nothing, so exactly
one of two racing saves wins. Lease expiry uses the database clock, so hosts whose
clocks disagree still agree on who holds a lease.
"""

from __future__ import annotations

import builtins
from typing import Any

from psycopg import Connection, errors, sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .store import ConflictError, Stored, Summary, ThreadNotFoundError, first_input
from .thread import Thread, status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    first_input TEXT NOT NULL,
    body JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS threads_status ON threads (status, updated_at);
CREATE TABLE IF NOT EXISTS thread_leases (
    thread_id TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_keys (
    key TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
"""
# Two processes starting at once would race on CREATE TABLE IF NOT EXISTS; this
# transaction-scoped advisory lock (an arbitrary constant) makes them take turns.
_SCHEMA_LOCK = 0x63616C63


class PostgresStore:
    def __init__(self, url: str, *, schema: str | None = None, max_connections: int = 16) -> None:
        """`schema` (created if missing) keeps tests and tenants apart; None is the default
        search_path (usually public)."""
        self.schema = schema
        self._pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=self._configure if schema else None,
            # A connection that died while idle (database restart) is replaced, not handed out.
            check=ConnectionPool.check_connection,
            open=False,
        )
        if schema:
            self._create_schema(url, schema)
        self._pool.open(wait=True, timeout=10)
        with self._pool.connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(_SCHEMA)

    @staticmethod
    def _create_schema(url: str, schema: str) -> None:
        with Connection.connect(url, autocommit=True, connect_timeout=10) as db:
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))

    def _configure(self, db: Connection[TupleRow]) -> None:
        assert self.schema is not None
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def close(self) -> None:
        self._pool.close()

    def _one(self, query: str, params: tuple[Any, ...]) -> TupleRow | None:
        with self._pool.connection() as db:
            row: TupleRow | None = db.execute(query, params).fetchone()
            return row

    def _count(self, query: str, params: tuple[Any, ...]) -> int:
        with self._pool.connection() as db:
            return db.execute(query, params).rowcount

    def create(self, thread: Thread) -> Stored:
        try:
            self._count(
                "INSERT INTO threads (id, version, status, first_input, body)"
                " VALUES (%s, 1, %s, %s, %s)",
                (thread.id, status(thread).kind, first_input(thread), _body(thread)),
            )
        except errors.UniqueViolation:
            raise ConflictError(f"thread {thread.id} already exists") from None
        return Stored(thread, 1)

    def get(self, thread_id: str) -> Stored:
        row = self._one("SELECT body, version FROM threads WHERE id = %s", (thread_id,))
        if row is None:
            raise ThreadNotFoundError(thread_id)
        return Stored(Thread.model_validate(row[0]), row[1])

    def save(self, thread: Thread, expected_version: int) -> Stored:
        updated = self._count(
            "UPDATE threads SET body = %s, status = %s, version = version + 1, updated_at = now()"
            " WHERE id = %s AND version = %s",
            (_body(thread), status(thread).kind, thread.id, expected_version),
        )
        if updated == 0:
            if self._one("SELECT 1 FROM threads WHERE id = %s", (thread.id,)) is None:
                raise ThreadNotFoundError(thread.id)
            raise ConflictError(
                f"thread {thread.id} changed since version {expected_version} was read"
            )
        return Stored(thread, expected_version + 1)

    def list(self, status: str | None = None, limit: int = 50) -> list[Summary]:
        query = "SELECT id, status, version, updated_at, first_input FROM threads"
        params: tuple[object, ...] = ()
        if status is not None:
            query += " WHERE status = %s"
            params = (status,)
        query += " ORDER BY updated_at DESC LIMIT %s"
        with self._pool.connection() as db:
            rows = db.execute(query, (*params, limit)).fetchall()
        return [
            Summary(id=r[0], status=r[1], version=r[2], updated_at=r[3], first_input=r[4])
            for r in rows
        ]

    # --- leases -------------------------------------------------------------------------

    def acquire_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        # One statement: a concurrent insert of the same key waits for ours to commit,
        # then takes the ON CONFLICT path and finds a live lease.
        try:
            return (
                self._count(
                    "INSERT INTO thread_leases (thread_id, owner, expires_at)"
                    " VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))"
                    " ON CONFLICT (thread_id) DO UPDATE"
                    " SET owner = excluded.owner, expires_at = excluded.expires_at"
                    " WHERE thread_leases.expires_at < clock_timestamp()",
                    (thread_id, owner, ttl_s),
                )
                == 1
            )
        except errors.ForeignKeyViolation:
            raise ThreadNotFoundError(thread_id) from None

    def renew_lease(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        return (
            self._count(
                "UPDATE thread_leases SET expires_at = clock_timestamp()"
                " + make_interval(secs => %s) WHERE thread_id = %s AND owner = %s",
                (ttl_s, thread_id, owner),
            )
            == 1
        )

    def release_lease(self, thread_id: str, owner: str) -> None:
        self._count(
            "DELETE FROM thread_leases WHERE thread_id = %s AND owner = %s", (thread_id, owner)
        )

    def is_leased(self, thread_id: str) -> bool:
        row = self._one(
            "SELECT 1 FROM thread_leases WHERE thread_id = %s AND expires_at >= clock_timestamp()",
            (thread_id,),
        )
        return row is not None

    def recoverable(self, idle_s: float, limit: int = 100) -> builtins.list[str]:
        with self._pool.connection() as db:
            rows = db.execute(
                "SELECT t.id FROM threads t LEFT JOIN thread_leases l"
                " ON l.thread_id = t.id AND l.expires_at >= clock_timestamp()"
                " WHERE t.status = 'running' AND l.thread_id IS NULL"
                " AND t.updated_at <= clock_timestamp() - make_interval(secs => %s)"
                " ORDER BY t.updated_at LIMIT %s",
                (idle_s, limit),
            ).fetchall()
        return [row[0] for row in rows]

    # --- replay protection --------------------------------------------------------------

    def remember(self, key: str, ttl_s: float) -> bool:
        with self._pool.connection() as db:
            db.execute("DELETE FROM seen_keys WHERE expires_at < clock_timestamp()")
            inserted = db.execute(
                "INSERT INTO seen_keys (key, expires_at)"
                " VALUES (%s, clock_timestamp() + make_interval(secs => %s))"
                " ON CONFLICT (key) DO NOTHING",
                (key, ttl_s),
            ).rowcount
        return inserted == 1


def _body(thread: Thread) -> Jsonb:
    return Jsonb(thread.model_dump(mode="json"))
