"""Crashes of a real server process: what a restart finds, and what it does with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calculator_agent.settings import Settings
from calculator_agent.store import SQLiteStore
from calculator_agent.thread import (
    Approval,
    Thread,
    ToolCall,
    ToolResponse,
    ToolStarted,
    UserInput,
)

from tests.helpers import wait_until
from tests.server.helpers import ServerProcess, free_port

# Short leases and sweeps, so a restart takes over within seconds.
FAST_RECOVERY = {"AGENT_LEASE_TTL_S": "2", "AGENT_RECOVERY_INTERVAL_S": "0.5"}


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def get(server: ServerProcess, thread_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/threads/{thread_id}", timeout=10)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def test_a_restart_asks_instead_of_rerunning_a_started_call(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    """A process died after recording that an approved divide started, before its result
    (the one window where the outcome is unknown). The next server must ask, not guess."""
    call = ToolCall(intent="divide", args={"a": 10, "b": 4}, needs_approval=True)
    crashed = Thread(
        events=(
            UserInput(text="what is 10 divided by 4?"),
            call,
            Approval(call_id=call.call_id, approved=True),
            ToolStarted(call_id=call.call_id),
        )
    )
    SQLiteStore(tmp_path / "threads.sqlite3").create(crashed)
    # No LLM anywhere: the recovery must not need one to ask the human.
    env = {
        **FAST_RECOVERY,
        "AGENT_AUTOSTART_MODEL": "false",
        "LOCAL_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }
    server = ServerProcess(tmp_path, env)
    servers.append(server)
    server.start()
    wait_until(lambda: get(server, crashed.id)["status"] != "running", 20)
    view = get(server, crashed.id)
    assert view["status"] == "waiting_for_human"
    assert view["waiting_for"]["question"].startswith("divide(a=10, b=4) was started")
    assert "outcome is unknown" in view["waiting_for"]["question"]
    types = [e["type"] for e in view["events"]]
    assert types == ["user_input", "tool_call", "approval", "tool_started", "tool_call"]
    assert "tool_response" not in types


@pytest.mark.model
def test_kill_mid_loop_then_restart_completes_without_loss_or_rerun(
    servers: list[ServerProcess], tmp_path: Path, model_settings: Settings
) -> None:
    env = {
        **FAST_RECOVERY,
        "AGENT_AUTOSTART_MODEL": "false",
        "LOCAL_LLM_BASE_URL": model_settings.local_llm_base_url,
    }
    first = ServerProcess(tmp_path, env)
    servers.append(first)
    first.start()
    launched = httpx.post(
        f"{first.url}/threads", json={"message": "what is 10 divided by 4?"}, timeout=10
    )
    assert launched.status_code == 202
    thread_id = launched.json()["thread_id"]
    wait_until(lambda: get(first, thread_id)["status"] != "running", 120, every=0.1)
    waiting = get(first, thread_id)["waiting_for"]
    assert waiting["intent"] == "divide"
    assert waiting["args"] == {"a": 10, "b": 4}
    call_id = waiting["call_id"]
    answer = {"type": "approve", "call_id": call_id}
    assert httpx.post(f"{first.url}/threads/{thread_id}/answers", json=answer).status_code == 202

    # Kill the process while the loop is inside the LLM call that follows the tool's
    # result: the approved divide has run, the final answer is not written yet.
    def mid_loop() -> dict[str, Any] | None:
        view = get(first, thread_id)
        assert view["status"] == "running", "the loop finished before it could be killed"
        return view if view["events"][-1]["type"] == "tool_response" else None

    seen = wait_until(mid_loop, 60, every=0.01)
    first.kill()
    before_restart = SQLiteStore(tmp_path / "threads.sqlite3").get(thread_id).thread
    assert before_restart.events[-1].type == "tool_response"

    second = ServerProcess(tmp_path, env)
    servers.append(second)
    restarted_at = time.monotonic()
    second.start()
    wait_until(lambda: get(second, thread_id)["status"] != "running", 120, every=0.1)
    final = get(second, thread_id)
    recovered_in = time.monotonic() - restarted_at
    assert final["status"] == "done", final
    assert "2.5" in final["result"]

    thread = SQLiteStore(tmp_path / "threads.sqlite3").get(thread_id).thread
    # No event lost: everything seen before the kill is still there, in order.
    as_json = [json.loads(e.model_dump_json()) for e in thread.events]
    assert as_json[: len(seen["events"])] == seen["events"]
    assert thread.events[: len(before_restart.events)] == before_restart.events
    # The approved call ran exactly once.
    started = [e.call_id for e in thread.events if isinstance(e, ToolStarted)]
    assert started == [call_id]
    results = [e for e in thread.events if isinstance(e, ToolResponse)]
    assert [(r.call_id, r.result) for r in results] == [(call_id, 2.5)]
    assert len([e for e in thread.events if isinstance(e, Approval)]) == 1
    print(f"\nrestart-to-done after the kill: {recovered_in:.1f}s")
