"""Execution and recovery: leases, picking up in-flight threads, unknown outcomes."""

from __future__ import annotations

import threading
from pathlib import Path

from calculator_agent.agent import Decision
from calculator_agent.store import SQLiteStore
from calculator_agent.thread import (
    Approval,
    Error,
    Thread,
    ToolCall,
    ToolStarted,
    UserInput,
    status,
)
from calculator_agent.tools import Tool

from tests.helpers import CalculatorBrain, wait_until
from tests.server.helpers import MakeApp, settle
from tests.toolbox import TEST_TOOLS

FAST = {"recovery_interval_s": 0.1, "lease_ttl_s": 1.0}


def counting_tools() -> tuple[dict[str, Tool], list[tuple[float, float]]]:
    ran: list[tuple[float, float]] = []

    def divide(a: float, b: float) -> float:
        ran.append((a, b))
        return a / b

    return {**TEST_TOOLS, "divide": Tool(divide, needs_approval=True)}, ran


def test_an_orphaned_running_thread_is_picked_up(make_app: MakeApp, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "threads.sqlite3")
    orphan = store.create(Thread(events=(UserInput(text="add 20 and 22"),))).thread
    client, _ = make_app(store=store, **FAST)
    view = wait_until(lambda: client.get(f"/threads/{orphan.id}").json()["status"] == "done")
    assert view
    assert settle(client, orphan.id)["result"] == "The answer is 42."


def test_a_started_call_without_result_asks_a_human(make_app: MakeApp, tmp_path: Path) -> None:
    # The state a crash between ToolStarted and ToolResponse leaves behind.
    store = SQLiteStore(tmp_path / "threads.sqlite3")
    call = ToolCall(intent="divide", args={"a": 10, "b": 4}, needs_approval=True)
    crashed = Thread(
        events=(
            UserInput(text="divide 10 by 4"),
            call,
            Approval(call_id=call.call_id, approved=True),
            ToolStarted(call_id=call.call_id),
        )
    )
    store.create(crashed)
    tools, ran = counting_tools()
    brain = CalculatorBrain()
    client, _ = make_app(store=store, tools=tools, next_step=brain, **FAST)
    wait_until(lambda: client.get(f"/threads/{crashed.id}").json()["status"] != "running")
    view = settle(client, crashed.id)
    assert view["status"] == "waiting_for_human"
    assert "outcome is unknown" in view["waiting_for"]["question"]
    assert "divide(a=10, b=4)" in view["waiting_for"]["question"]
    assert ran == []  # never re-run on a guess
    assert brain.calls == 0


def test_a_live_lease_elsewhere_is_respected_until_it_expires(
    make_app: MakeApp, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "threads.sqlite3")
    thread = store.create(Thread(events=(UserInput(text="add 1 and 1"),))).thread
    # Another process holds the lease (and then dies: it never renews).
    assert store.acquire_lease(thread.id, "other-host:123:abcd", ttl_s=2.0)
    client, _ = make_app(store=store, **FAST)
    assert client.get(f"/threads/{thread.id}").json()["loop_active"] is True
    busy = client.post(f"/threads/{thread.id}/messages", json={"message": "add 2 and 2"})
    assert busy.status_code == 409
    assert client.get(f"/threads/{thread.id}").json()["status"] == "running"
    wait_until(lambda: client.get(f"/threads/{thread.id}").json()["status"] == "done", 10)
    # The refused message never made it in.
    inputs = [e for e in store.get(thread.id).thread.events if isinstance(e, UserInput)]
    assert [e.text for e in inputs] == ["add 1 and 1"]


def test_two_servers_on_one_database_run_a_thread_once(make_app: MakeApp) -> None:
    gate = threading.Event()
    brain_a = CalculatorBrain(gate=gate)
    brain_b = CalculatorBrain()
    a, _ = make_app(next_step=brain_a)
    b, _ = make_app(next_step=brain_b, recovery_interval_s=0.1)  # same SQLite file
    thread_id = a.post("/threads", json={"message": "add 3 and 4"}).json()["thread_id"]
    assert b.get(f"/threads/{thread_id}").json()["loop_active"] is True
    response = b.post(f"/threads/{thread_id}/messages", json={"message": "add 1 and 1"})
    assert response.status_code == 409
    threading.Event().wait(1.5)  # several sweeps of b: none may take the thread
    assert brain_b.calls == 0
    gate.set()
    assert settle(b, thread_id)["result"] == "The answer is 7."
    assert brain_b.calls == 0


def test_a_crashing_loop_ends_in_a_question_not_a_retry_storm(make_app: MakeApp) -> None:
    calls = []

    def broken(thread: Thread) -> Decision:
        calls.append(1)
        raise RuntimeError("bug in the prompt adapter")

    client, services = make_app(next_step=broken, max_consecutive_errors=3, **FAST)
    thread_id = client.post("/threads", json={"message": "add 1 and 2"}).json()["thread_id"]
    wait_until(
        lambda: client.get(f"/threads/{thread_id}").json()["status"] == "waiting_for_human", 15
    )
    thread = services.store.get(thread_id).thread
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert len(errors) == 3
    assert errors[0].source == "system"
    assert errors[0].message == "the loop crashed: RuntimeError: bug in the prompt adapter"
    assert len(calls) == 3
    assert status(thread).kind == "waiting_for_human"


def test_shutdown_stops_at_an_event_and_a_restart_finishes(
    make_app: MakeApp, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from calculator_agent.server import create_app

    from tests.server.helpers import settings_for

    gate = threading.Event()
    store = SQLiteStore(tmp_path / "threads.sqlite3")
    app = create_app(
        settings_for(tmp_path, **FAST), store=store, next_step=CalculatorBrain(gate=gate)
    )
    with TestClient(app) as client:
        thread_id = client.post("/threads", json={"message": "add 5 and 6"}).json()["thread_id"]
        wait_until(lambda: store.is_leased(thread_id))
        # Shutdown waits for the loop, which is inside an LLM call: let that call finish.
        threading.Timer(0.3, gate.set).start()
    thread = store.get(thread_id).thread
    # Stopped right after the LLM's choice was saved, before running the tool.
    assert [e.type for e in thread.events] == ["user_input", "tool_call"]
    assert status(thread).kind == "running"
    assert not store.is_leased(thread_id)
    client, _ = make_app(store=store, **FAST)
    wait_until(lambda: client.get(f"/threads/{thread_id}").json()["status"] == "done")
    events = store.get(thread_id).thread.events
    assert [e.type for e in events] == [
        "user_input",
        "tool_call",
        "tool_started",
        "tool_response",
        "tool_call",
    ]
