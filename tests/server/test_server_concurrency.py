"""Races over real HTTP: a uvicorn server on 127.0.0.1, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from calculator_agent.server import create_app
from calculator_agent.store import SQLiteStore, ThreadStore
from calculator_agent.thread import Approval, ToolStarted

from tests.helpers import CalculatorBrain, postgres_store, require_postgres, wait_until
from tests.server.helpers import free_port, settings_for, settle


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "threads.sqlite3")
        return
    with postgres_store(require_postgres()) as pg:
        yield pg


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[httpx.Client]:
    """The app under uvicorn in a background thread; a client for its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10)
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)


def test_20_simultaneous_answers_one_accepted(store: ThreadStore, tmp_path: Path) -> None:
    brain = CalculatorBrain(delay_s=0.05)  # the accepted answer's loop takes a moment
    app = create_app(settings_for(tmp_path), store=store, next_step=brain)
    with live_server(app) as client:
        thread_id = client.post("/threads", json={"message": "divide 10 by 4"}).json()["thread_id"]
        call_id = settle(client, thread_id)["waiting_for"]["call_id"]
        barrier = threading.Barrier(20)

        def answer(index: int) -> httpx.Response:
            body = (
                {"type": "approve", "call_id": call_id}
                if index % 2 == 0
                else {"type": "reject", "call_id": call_id, "feedback": f"no #{index}"}
            )
            barrier.wait()
            return client.post(f"/threads/{thread_id}/answers", json=body)

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(answer, range(20)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [202] + [409] * 19, [r.text for r in responses]
        for refused in (r for r in responses if r.status_code == 409):
            detail = refused.json()["detail"]
            assert "running" in detail or "not waiting for approval" in detail, detail
        view = settle(client, thread_id)
    thread = store.get(thread_id).thread
    approvals = [e for e in thread.events if isinstance(e, Approval)]
    assert len(approvals) == 1
    assert view["status"] == "done"
    # Intact: the one answer and exactly the events it leads to.
    expected = (
        ["user_input", "tool_call", "approval", "tool_started", "tool_response", "tool_call"]
        if approvals[0].approved
        else ["user_input", "tool_call", "approval", "tool_call"]
    )
    assert [e.type for e in thread.events] == expected
    assert len([e for e in thread.events if isinstance(e, ToolStarted)]) <= 1


def test_20_simultaneous_launches_of_one_id_one_accepted(
    store: ThreadStore, tmp_path: Path
) -> None:
    app = create_app(settings_for(tmp_path), store=store, next_step=CalculatorBrain())
    with live_server(app) as client:
        barrier = threading.Barrier(20)

        def launch(index: int) -> httpx.Response:
            barrier.wait()
            return client.post("/threads", json={"message": "add 1 and 2", "thread_id": "dup"})

        with ThreadPoolExecutor(20) as pool:
            codes = sorted(r.status_code for r in pool.map(launch, range(20)))
        assert codes == [202] + [409] * 19
        assert settle(client, "dup")["result"] == "The answer is 3."
    assert len(store.get("dup").thread.events) == 5


def test_many_threads_at_once_all_finish(store: ThreadStore, tmp_path: Path) -> None:
    app = create_app(
        settings_for(tmp_path, max_concurrent_loops=4), store=store, next_step=CalculatorBrain()
    )
    with live_server(app) as client:

        def flow(index: int) -> str:
            launched = client.post("/threads", json={"message": f"divide {index} by 2"})
            thread_id: str = launched.json()["thread_id"]
            call_id = settle(client, thread_id, 30)["waiting_for"]["call_id"]
            answer = {"type": "approve", "call_id": call_id}
            assert client.post(f"/threads/{thread_id}/answers", json=answer).status_code == 202
            result: str = settle(client, thread_id, 30)["result"]
            return result

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(flow, range(1, 33)))
    from calculator_agent.context import format_number

    assert results == [f"The answer is {format_number(i / 2)}." for i in range(1, 33)]
