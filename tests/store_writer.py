"""A writer for the multi-process store test: kept light, as each process imports it."""

from __future__ import annotations

from pathlib import Path

from calculator_agent.store import ConflictError, SQLiteStore, ThreadStore
from calculator_agent.thread import Error


def append_with_retries(store: ThreadStore, thread_id: str, writer: str, count: int) -> None:
    """Append `count` events, re-reading and retrying whenever another writer won."""
    for n in range(count):
        while True:
            stored = store.get(thread_id)
            event = Error(source="tool", message=f"{writer}:{n}")
            try:
                store.save(stored.thread.append(event), stored.version)
                break
            except ConflictError:
                continue


def writer_process(kind: str, where: str, thread_id: str, writer: str) -> None:
    if kind == "sqlite":
        store: ThreadStore = SQLiteStore(Path(where))
    else:
        from calculator_agent.postgres_store import PostgresStore

        url, schema = where.split("#")
        store = PostgresStore(url, schema=schema, max_connections=2)
    append_with_retries(store, thread_id, writer, 10)
    store.close()
