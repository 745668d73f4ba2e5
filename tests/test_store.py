"""One suite for every store: SQLite (embedded) and PostgreSQL (shared).

The PostgreSQL half runs against the server on 127.0.0.1:5432, each test in a schema of
its own that is dropped afterwards; without a reachable server it skips, saying why.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from calculator_agent.agent import InvalidEventError
from calculator_agent.postgres_store import PostgresStore
from calculator_agent.runner import Runner
from calculator_agent.settings import Settings
from calculator_agent.store import (
    ConflictError,
    SQLiteStore,
    ThreadNotFoundError,
    ThreadStore,
    open_store,
)
from calculator_agent.thread import (
    Approval,
    Error,
    Thread,
    ToolCall,
    UserInput,
    status,
)

from tests.helpers import CalculatorBrain, postgres_store, require_postgres
from tests.store_writer import append_with_retries, writer_process
from tests.toolbox import TEST_TOOLS

T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "threads.sqlite3")
        return
    with postgres_store(require_postgres()) as pg:
        yield pg


def request_thread(text: str = "add 1 and 2") -> Thread:
    return Thread(events=(UserInput(text=text),))


def waiting_for_approval() -> tuple[Thread, ToolCall]:
    call = ToolCall(intent="divide", args={"a": 10, "b": 4}, needs_approval=True)
    return request_thread("divide 10 by 4").append(call), call


def race(count: int, attempt: Callable[[int], T]) -> list[T | Exception]:
    """Run `attempt` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def one(index: int) -> T | Exception:
        barrier.wait()
        try:
            return attempt(index)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


# --- threads --------------------------------------------------------------------------


def test_create_get_roundtrip(store: ThreadStore) -> None:
    thread, _ = waiting_for_approval()
    assert store.create(thread).version == 1
    loaded = store.get(thread.id)
    assert loaded.thread == thread
    assert loaded.version == 1


def test_create_twice_is_a_conflict(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    with pytest.raises(ConflictError, match="already exists"):
        store.create(thread)


def test_unknown_thread(store: ThreadStore) -> None:
    with pytest.raises(ThreadNotFoundError):
        store.get("nope")
    with pytest.raises(ThreadNotFoundError):
        store.save(request_thread(), 1)


def test_save_is_compare_and_set(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    first = store.save(thread.append(Error(source="llm", message="one")), 1)
    assert first.version == 2
    with pytest.raises(ConflictError, match="changed since version 1"):
        store.save(thread.append(Error(source="llm", message="stale")), 1)
    assert store.get(thread.id).thread == first.thread


def test_list_filters_orders_and_limits(store: ThreadStore) -> None:
    older = request_thread("first")
    store.create(older)
    time.sleep(0.01)
    paused, _ = waiting_for_approval()
    store.create(paused)
    rows = store.list()
    assert [row.id for row in rows] == [paused.id, older.id]
    assert rows[0].status == "waiting_for_approval"
    assert rows[0].first_input == "divide 10 by 4"
    assert rows[0].updated_at.tzinfo is not None
    assert [row.id for row in store.list("running")] == [older.id]
    assert store.list("done") == []
    assert len(store.list(limit=1)) == 1


def test_a_thread_survives_a_reopen(tmp_path: Path) -> None:
    thread = request_thread()
    SQLiteStore(tmp_path / "t.db").create(thread)
    assert SQLiteStore(tmp_path / "t.db").get(thread.id).thread == thread


# --- leases ---------------------------------------------------------------------------


def test_a_lease_has_one_holder_at_a_time(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    assert not store.is_leased(thread.id)
    assert store.acquire_lease(thread.id, "a", 30)
    assert store.is_leased(thread.id)
    assert not store.acquire_lease(thread.id, "b", 30)
    assert not store.acquire_lease(thread.id, "a", 30)  # not re-entrant either
    store.release_lease(thread.id, "b")  # not b's to release: no effect
    assert store.is_leased(thread.id)
    assert not store.renew_lease(thread.id, "b", 30)
    assert store.renew_lease(thread.id, "a", 30)
    store.release_lease(thread.id, "a")
    assert not store.is_leased(thread.id)
    assert store.acquire_lease(thread.id, "b", 30)


def test_an_expired_lease_is_taken_over(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    assert store.acquire_lease(thread.id, "crashed", 0.2)
    assert not store.acquire_lease(thread.id, "new", 30)
    time.sleep(0.3)
    assert not store.is_leased(thread.id)
    assert store.acquire_lease(thread.id, "new", 30)
    # The old holder cannot renew or release what it lost.
    assert not store.renew_lease(thread.id, "crashed", 30)
    store.release_lease(thread.id, "crashed")
    assert store.is_leased(thread.id)


def test_lease_on_an_unknown_thread(store: ThreadStore) -> None:
    with pytest.raises(ThreadNotFoundError):
        store.acquire_lease("nope", "a", 30)


def test_recoverable_is_running_unleased_and_idle(store: ThreadStore) -> None:
    orphan, leased, done_ = request_thread("a"), request_thread("b"), request_thread("c")
    paused, _ = waiting_for_approval()
    for thread in (orphan, leased, paused):
        store.create(thread)
    store.create(done_.append(ToolCall(intent="done_for_now", args={"message": "ok"})))
    store.acquire_lease(leased.id, "someone", 30)
    assert store.recoverable(idle_s=60) == []  # all touched just now
    time.sleep(0.2)
    assert store.recoverable(idle_s=0.1) == [orphan.id]


# --- replay keys ----------------------------------------------------------------------


def test_remember_refuses_a_key_until_it_expires(store: ThreadStore) -> None:
    assert store.remember("sig-1", 0.2)
    assert not store.remember("sig-1", 0.2)
    assert store.remember("sig-2", 0.2)
    time.sleep(0.3)
    assert store.remember("sig-1", 0.2)


# --- concurrent writers ---------------------------------------------------------------


def test_20_simultaneous_saves_of_one_version_have_one_winner(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    results = race(
        20, lambda i: store.save(thread.append(Error(source="llm", message=f"writer {i}")), 1)
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, Exception))
    stored = store.get(thread.id)
    assert stored.version == 2
    assert stored.thread == winners[0].thread


def test_20_simultaneous_lease_grabs_have_one_winner(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    results = race(20, lambda i: store.acquire_lease(thread.id, f"owner-{i}", 30))
    assert results.count(True) == 1
    assert results.count(False) == 19


def test_20_simultaneous_answers_one_accepted_thread_intact(store: ThreadStore) -> None:
    thread, call = waiting_for_approval()
    store.create(thread)
    runner = Runner(store, CalculatorBrain(), TEST_TOOLS)
    results = race(
        20,
        lambda i: runner.submit(
            thread.id, Approval(call_id=call.call_id, approved=i % 2 == 0, feedback=f"#{i}")
        ),
    )
    accepted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 1
    assert len(refused) == 19
    assert all(isinstance(r, ConflictError | InvalidEventError) for r in refused)
    final = store.get(thread.id)
    assert final.version == 2
    assert final.thread.events[:2] == thread.events
    approvals = [e for e in final.thread.events if isinstance(e, Approval)]
    assert len(approvals) == 1
    assert final.thread == accepted[0].thread
    assert status(final.thread).kind == "running"


def test_concurrent_writers_with_retries_lose_nothing(store: ThreadStore) -> None:
    thread = request_thread()
    store.create(thread)
    race(8, lambda i: append_with_retries(store, thread.id, f"w{i}", 10))
    final = store.get(thread.id)
    messages = [e.message for e in final.thread.events if isinstance(e, Error)]
    assert sorted(messages) == sorted(f"w{i}:{n}" for i in range(8) for n in range(10))
    assert final.version == 81


def test_concurrent_writer_processes_lose_nothing(store: ThreadStore, tmp_path: Path) -> None:
    thread = request_thread()
    store.create(thread)
    if isinstance(store, PostgresStore):
        kind, where = "postgresql", f"{require_postgres()}#{store.schema}"
    else:
        assert isinstance(store, SQLiteStore)
        kind, where = "sqlite", str(store.path)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=writer_process, args=(kind, where, thread.id, f"p{i}"))
        for i in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    messages = [e.message for e in store.get(thread.id).thread.events if isinstance(e, Error)]
    assert sorted(messages) == sorted(f"p{i}:{n}" for i in range(4) for n in range(10))


# --- choosing a store -----------------------------------------------------------------


def test_open_store_follows_database_url(tmp_path: Path) -> None:
    def settings(url: str) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, AGENT_DATABASE_URL=url)

    embedded = open_store(settings(""))
    assert isinstance(embedded, SQLiteStore)
    assert embedded.path == tmp_path / "threads.sqlite3"
    elsewhere = open_store(settings(f"sqlite:///{tmp_path}/other.db"))
    assert isinstance(elsewhere, SQLiteStore)
    assert elsewhere.path == tmp_path / "other.db"
    with pytest.raises(ValueError, match="must be empty"):
        open_store(settings("mysql://x"))


def test_open_store_opens_postgres(tmp_path: Path) -> None:
    import uuid

    import psycopg

    url = require_postgres()
    schema = f"test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # A schema can be chosen in the URL itself, as libpq options.
        scoped = f"{url}?options=-csearch_path%3D{schema}"
        store = open_store(Settings(_env_file=None, data_dir=tmp_path, AGENT_DATABASE_URL=scoped))
        try:
            assert isinstance(store, PostgresStore)
            thread = request_thread()
            store.create(thread)
            assert store.get(thread.id).thread == thread
        finally:
            store.close()
        with psycopg.connect(url) as db:
            row = db.execute(f'SELECT count(*) FROM "{schema}".threads').fetchone()
            assert row == (1,)
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')
