"""The runner: the loop wired to a store, under a lease, saving every event."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from calculator_agent.agent import InvalidEventError
from calculator_agent.leases import ThreadBusyError
from calculator_agent.prefetch import prefetch
from calculator_agent.runner import Runner
from calculator_agent.store import ConflictError, SQLiteStore, ThreadStore
from calculator_agent.thread import (
    Approval,
    Error,
    HumanResponse,
    NotificationFailed,
    Thread,
    ToolCall,
    ToolStarted,
    UserInput,
    status,
)
from calculator_agent.tools import Tool

from tests.scripted import ScriptedNextStep, call
from tests.toolbox import TEST_TOOLS


@pytest.fixture
def store(tmp_path: Path) -> ThreadStore:
    return SQLiteStore(tmp_path / "threads.sqlite3")


def runner_for(store: ThreadStore, *steps: object, **kwargs: float) -> Runner:
    return Runner(store, ScriptedNextStep(steps), TEST_TOOLS, **kwargs)  # type: ignore[arg-type]


def test_launch_stores_a_running_thread_with_prefetched_context(store: ThreadStore) -> None:
    text = "multiply pi by 2"
    stored = runner_for(store).launch(text)
    expected = ["user_input", *(event.type for event in prefetch(text))]
    assert [e.type for e in stored.thread.events] == expected
    assert status(store.get(stored.thread.id).thread).kind == "running"


def test_launch_under_a_chosen_id(store: ThreadStore) -> None:
    runner = runner_for(store)
    assert runner.launch("add 1 and 2", thread_id="ticket-1").thread.id == "ticket-1"
    with pytest.raises(ConflictError):
        runner.launch("again", thread_id="ticket-1")
    with pytest.raises(ValueError, match="must match"):
        runner.launch("x", thread_id="../etc/passwd")


def test_advance_saves_every_event_and_releases_the_lease(store: ThreadStore) -> None:
    runner = runner_for(store, call("add", a=1, b=2), call("done_for_now", message="3"))
    thread_id = runner.launch("add 1 and 2").thread.id
    seen: list[str] = []
    thread = runner.advance(thread_id, on_event=lambda _, event: seen.append(event.type))
    assert seen == ["tool_call", "tool_started", "tool_response", "tool_call"]
    stored = store.get(thread_id)
    assert stored.thread == thread
    assert stored.version == 1 + len(seen)
    assert not store.is_leased(thread_id)


def test_advance_refuses_while_another_loop_holds_the_thread(store: ThreadStore) -> None:
    runner = runner_for(store, call("done_for_now", message="x"))
    thread_id = runner.launch("hi").thread.id
    other = runner_for(store)
    with other.claim(thread_id), pytest.raises(ThreadBusyError, match="is running"):
        runner.advance(thread_id)
    assert len(store.get(thread_id).thread.events) == 1
    assert runner.advance(thread_id).events[-1].type == "tool_call"


def test_advance_under_a_given_lease_leaves_releasing_to_the_caller(store: ThreadStore) -> None:
    runner = runner_for(store, call("done_for_now", message="x"))
    thread_id = runner.launch("hi").thread.id
    lease = runner.claim(thread_id)
    runner.advance(thread_id, lease=lease)
    assert store.is_leased(thread_id)
    lease.release()
    lease.release()  # idempotent
    assert not store.is_leased(thread_id)


def test_a_lost_lease_stops_the_loop_before_it_writes(store: ThreadStore) -> None:
    runner = runner_for(store, call("add", a=1, b=2))
    thread_id = runner.launch("add 1 and 2").thread.id
    lease = runner.claim(thread_id)
    lease.lost = True  # as the renewer marks it when another process took over
    with pytest.raises(ThreadBusyError, match="lost the lease"):
        runner.advance(thread_id, lease=lease)
    assert len(store.get(thread_id).thread.events) == 1
    lease.release()


def test_the_keeper_renews_leases_beyond_their_ttl(store: ThreadStore) -> None:
    runner = runner_for(store, lease_ttl_s=0.3)
    thread_id = runner.launch("hi").thread.id
    with runner.claim(thread_id) as lease:
        time.sleep(1.0)
        assert store.is_leased(thread_id)
        assert not lease.lost
        assert runner.leases.held() == [thread_id]
    assert not store.is_leased(thread_id)
    assert runner.leases.held() == []


def test_should_stop_ends_at_a_saved_event_but_never_inside_a_tool_call(
    store: ThreadStore,
) -> None:
    runner = runner_for(store, call("add", a=1, b=2), call("done_for_now", message="3"))
    thread_id = runner.launch("add 1 and 2").thread.id
    # Asked after every saved event; "stop" from the start.
    thread = runner.advance(thread_id, should_stop=lambda: True)
    assert [e.type for e in thread.events] == ["user_input", "tool_call"]
    thread = runner.advance(thread_id, should_stop=lambda: True)
    # The stop request after tool_started is ignored: the result is saved first.
    assert [e.type for e in thread.events][-2:] == ["tool_started", "tool_response"]
    assert store.get(thread_id).thread == thread
    assert runner.advance(thread_id).events[-1].type == "tool_call"


def test_a_started_tool_without_a_result_is_never_rerun(store: ThreadStore) -> None:
    ran: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        ran.append((a, b))
        return a + b

    tools = {"add": Tool(add)}
    started = ToolCall(intent="add", args={"a": 1, "b": 2})
    crashed = Thread(
        events=(UserInput(text="add 1 and 2"), started, ToolStarted(call_id=started.call_id))
    )
    store.create(crashed)
    runner = Runner(store, ScriptedNextStep([]), tools)
    thread = runner.advance(crashed.id)
    assert ran == []
    current = status(thread)
    assert current.kind == "waiting_for_human"
    assert "outcome is unknown" in thread.events[-1].message  # type: ignore[union-attr]


def test_submit_saves_several_events_all_or_nothing(store: ThreadStore) -> None:
    runner = runner_for(store)
    thread_id = runner.launch("hi").thread.id
    with pytest.raises(InvalidEventError):
        runner.submit(thread_id, UserInput(text="a"), HumanResponse(call_id="x", text="b"))
    assert len(store.get(thread_id).thread.events) == 1
    stored = runner.submit(thread_id, UserInput(text="a"), UserInput(text="b"))
    assert stored.version == 2
    assert len(stored.thread.events) == 3


def test_note_appends_bookkeeping_only_while_it_applies(store: ThreadStore) -> None:
    runner = runner_for(store)
    paused = Thread(
        events=(
            UserInput(text="divide 1 by 2"),
            ToolCall(intent="divide", args={"a": 1, "b": 2}, needs_approval=True),
        )
    )
    store.create(paused)
    failed = NotificationFailed(call_id="c", url="http://x", attempts=3, error="HTTP 500")
    assert runner.note(paused.id, failed, lambda t: status(t).kind == "waiting_for_approval")
    thread = store.get(paused.id).thread
    assert thread.events[-1] == failed
    assert status(thread).kind == "waiting_for_approval"  # the pause survives the note
    assert not runner.note(paused.id, Error(source="system", message="x"), lambda t: False)
    assert len(store.get(paused.id).thread.events) == 3


def test_an_answer_after_a_failed_notification_continues(store: ThreadStore) -> None:
    runner = runner_for(store, call("done_for_now", message="0.5"))
    divide = ToolCall(intent="divide", args={"a": 1, "b": 2}, needs_approval=True)
    failed = NotificationFailed(call_id=divide.call_id, url="u", attempts=1, error="e")
    store.create(Thread(id="t", events=(UserInput(text="divide 1 by 2"), divide, failed)))
    runner.submit("t", Approval(call_id=divide.call_id, approved=True))
    thread = runner.advance("t")
    assert [e.type for e in thread.events][-4:] == [
        "approval",
        "tool_started",
        "tool_response",
        "tool_call",
    ]
    assert status(thread).kind == "done"


def test_fork_copies_a_prefix(store: ThreadStore) -> None:
    runner = runner_for(store, call("done_for_now", message="hi"))
    thread_id = runner.launch("hi").thread.id
    runner.advance(thread_id)
    fork = runner.fork(thread_id, 0)
    assert fork.thread.id != thread_id
    assert fork.thread.events == store.get(thread_id).thread.events[:1]
    with pytest.raises(IndexError):
        runner.fork(thread_id, 2)
