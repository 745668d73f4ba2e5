"""The reducer, the switch and the loop, driven by scripted next steps (no LLM)."""

from __future__ import annotations

import pytest

from calculator_agent.agent import (
    AskHuman,
    CallLLM,
    InvalidEventError,
    RunTool,
    next_action,
    run_until_pause,
    step,
)
from calculator_agent.context import render_thread
from calculator_agent.thread import (
    Approval,
    Done,
    Error,
    Event,
    FailedStatus,
    HumanResponse,
    Thread,
    ToolCall,
    ToolResponse,
    ToolStarted,
    UserInput,
    WaitingForApproval,
    WaitingForHuman,
    status,
)

from tests.scripted import ScriptedNextStep, call, garbage
from tests.toolbox import TEST_TOOLS


def start(text: str) -> Thread:
    return step(Thread(), UserInput(text=text))


def types(thread: Thread) -> list[str]:
    return [e.intent if isinstance(e, ToolCall) else e.type for e in thread.events]


def test_sync_tools_run_inline_until_done() -> None:
    script = ScriptedNextStep(
        [call("multiply", a=3, b=4), call("add", a=12, b=1), call("done_for_now", message="13")]
    )
    thread = run_until_pause(start("3*4+1"), script, TEST_TOOLS)
    assert types(thread) == [
        "user_input", "multiply", "tool_started", "tool_response",
        "add", "tool_started", "tool_response", "done_for_now",
    ]  # fmt: skip
    results = [e.result for e in thread.events if isinstance(e, ToolResponse)]
    assert results == [12, 13]
    assert status(thread) == Done(message="13")
    assert script.remaining == 0


def test_divide_pauses_before_running_then_runs_once_approved() -> None:
    script = ScriptedNextStep([call("divide", a=12, b=2), call("done_for_now", message="6")])
    paused = run_until_pause(start("12/2"), script, TEST_TOOLS)
    current = status(paused)
    assert isinstance(current, WaitingForApproval)
    assert not any(isinstance(e, ToolStarted) for e in paused.events)

    approved = step(paused, Approval(call_id=current.call.call_id, approved=True))
    done = run_until_pause(approved, script, TEST_TOOLS)
    assert [e.result for e in done.events if isinstance(e, ToolResponse)] == [6]
    assert status(done) == Done(message="6")


def test_rejection_feedback_reaches_the_model_which_proposes_a_new_call() -> None:
    script = ScriptedNextStep(
        [call("divide", a=12, b=2), call("divide", a=12, b=3), call("done_for_now", message="4")]
    )
    paused = run_until_pause(start("12/2"), script, TEST_TOOLS)
    pending = status(paused)
    assert isinstance(pending, WaitingForApproval)
    rejected = step(
        paused, Approval(call_id=pending.call.call_id, approved=False, feedback="use 3 instead")
    )
    again = run_until_pause(rejected, script, TEST_TOOLS)
    assert "user denied the operation with feedback: use 3 instead" in render_thread(
        script.seen[-1]
    )
    second = status(again)
    assert isinstance(second, WaitingForApproval)
    assert second.call.args == {"a": 12, "b": 3}


def test_request_more_information_pauses_and_the_answer_resumes() -> None:
    script = ScriptedNextStep(
        [call("request_more_information", message="which number?"), call("add", a=2, b=5),
         call("done_for_now", message="7")]
    )  # fmt: skip
    paused = run_until_pause(start("add 2 and x"), script, TEST_TOOLS)
    current = status(paused)
    assert isinstance(current, WaitingForHuman)
    assert current.question == "which number?"
    resumed = step(paused, HumanResponse(call_id=current.call_id, text="5"))
    assert status(run_until_pause(resumed, script, TEST_TOOLS)) == Done(message="7")


def test_tool_errors_are_compacted_into_the_thread_and_the_model_retries() -> None:
    script = ScriptedNextStep(
        [call("divide", a=1, b=0), call("done_for_now", message="cannot divide by zero")]
    )
    paused = run_until_pause(start("1/0"), script, TEST_TOOLS)
    pending = status(paused)
    assert isinstance(pending, WaitingForApproval)
    thread = run_until_pause(
        step(paused, Approval(call_id=pending.call.call_id, approved=True)), script, TEST_TOOLS
    )
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert [(e.source, e.message) for e in errors] == [
        ("tool", "divide(a=1, b=0) failed: cannot divide by zero")
    ]
    assert "<error>\ndivide(a=1, b=0) failed: cannot divide by zero\n</error>" in render_thread(
        script.seen[-1]
    )


def test_three_consecutive_errors_stop_the_loop_and_ask_a_human() -> None:
    script = ScriptedNextStep([garbage("bad-1"), garbage("bad-2"), garbage("bad-3")])
    thread = run_until_pause(start("hi"), script, TEST_TOOLS)
    assert types(thread)[-4:] == ["error", "error", "error", "request_more_information"]
    current = status(thread)
    assert isinstance(current, WaitingForHuman)
    assert "3 errors in a row" in current.question
    assert "bad-3" in current.question
    assert script.remaining == 0


def test_an_answer_after_escalation_resets_the_error_count() -> None:
    script = ScriptedNextStep([garbage(), garbage(), garbage(), call("add", a=1, b=1),
                               call("done_for_now", message="2")])  # fmt: skip
    paused = run_until_pause(start("1+1"), script, TEST_TOOLS)
    current = status(paused)
    assert isinstance(current, WaitingForHuman)
    resumed = step(paused, HumanResponse(call_id=current.call_id, text="try again"))
    assert status(run_until_pause(resumed, script, TEST_TOOLS)) == Done(message="2")


def test_unknown_intent_becomes_an_error_event() -> None:
    script = ScriptedNextStep([call("sqrt", a=4), call("done_for_now", message="no sqrt")])
    thread = run_until_pause(start("sqrt 4"), script, TEST_TOOLS)
    assert any(isinstance(e, Error) and "unknown intent 'sqrt'" in e.message for e in thread.events)


def test_step_cap_fails_the_thread() -> None:
    script = ScriptedNextStep([call("add", a=1, b=1)] * 5)
    thread = run_until_pause(start("loop"), script, TEST_TOOLS, max_steps=3)
    current = status(thread)
    assert isinstance(current, FailedStatus)
    assert "step limit" in current.reason
    assert script.remaining == 2


def test_on_event_sees_every_event_in_order() -> None:
    seen: list[Event] = []
    script = ScriptedNextStep([call("add", a=1, b=2), call("done_for_now", message="3")])
    thread = run_until_pause(
        start("1+2"), script, TEST_TOOLS, on_event=lambda _, event: seen.append(event)
    )
    assert tuple(seen) == thread.events[1:]


def test_started_call_without_result_asks_a_human_instead_of_running_again() -> None:
    call_event = ToolCall(intent="divide", args={"a": 8, "b": 2}, needs_approval=True)
    crashed = Thread(
        events=(
            UserInput(text="8/2"),
            call_event,
            Approval(call_id=call_event.call_id, approved=True),
            ToolStarted(call_id=call_event.call_id),
        )
    )
    action = next_action(crashed)
    assert isinstance(action, AskHuman)
    script = ScriptedNextStep([])
    thread = run_until_pause(crashed, script, TEST_TOOLS)
    current = status(thread)
    assert isinstance(current, WaitingForHuman)
    assert "divide(a=8, b=2)" in current.question
    assert "unknown" in current.question
    assert not any(isinstance(e, ToolResponse) for e in thread.events)


def test_next_action_runs_approved_calls_and_sync_calls() -> None:
    sync_call = ToolCall(intent="add", args={"a": 1, "b": 1})
    assert next_action(Thread(events=(UserInput(text="x"), sync_call))) == RunTool(sync_call)
    assert next_action(Thread(events=(UserInput(text="x"),))) == CallLLM()


class TestReducerValidation:
    def paused_for_approval(self) -> tuple[Thread, ToolCall]:
        pending = ToolCall(intent="divide", args={"a": 1, "b": 2}, needs_approval=True)
        return Thread(events=(UserInput(text="1/2"), pending)), pending

    def test_approval_for_another_call_id_is_rejected(self) -> None:
        thread, _ = self.paused_for_approval()
        with pytest.raises(InvalidEventError, match="waits for approval of"):
            step(thread, Approval(call_id="nope", approved=True))

    def test_answer_when_waiting_for_approval_is_rejected(self) -> None:
        thread, pending = self.paused_for_approval()
        with pytest.raises(InvalidEventError, match="not waiting for an answer"):
            step(thread, HumanResponse(call_id=pending.call_id, text="5"))

    def test_new_input_while_paused_is_rejected(self) -> None:
        thread, _ = self.paused_for_approval()
        with pytest.raises(InvalidEventError, match="answer that first"):
            step(thread, UserInput(text="something else"))

    def test_approval_when_not_waiting_is_rejected(self) -> None:
        with pytest.raises(InvalidEventError, match="not waiting for approval"):
            step(start("hi"), Approval(call_id="x", approved=True))

    def test_loop_events_are_refused_once_done(self) -> None:
        done = start("x").append(ToolCall(intent="done_for_now", args={"message": "ok"}))
        with pytest.raises(InvalidEventError, match="takes no tool_response"):
            step(done, ToolResponse(call_id="c", result=1))

    def test_a_done_thread_takes_a_follow_up_request(self) -> None:
        done = start("x").append(ToolCall(intent="done_for_now", args={"message": "ok"}))
        assert status(step(done, UserInput(text="now add 1"))).kind == "running"
