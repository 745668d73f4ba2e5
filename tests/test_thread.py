from __future__ import annotations

import pytest
from pydantic import ValidationError

from calculator_agent.thread import (
    Approval,
    Done,
    Error,
    FailedStatus,
    HumanResponse,
    Running,
    StepTelemetry,
    Thread,
    ToolCall,
    ToolResponse,
    ToolStarted,
    UserInput,
    WaitingForApproval,
    WaitingForHuman,
    status,
)


def sample_thread() -> Thread:
    call = ToolCall(
        intent="divide",
        args={"a": 12, "b": 2.5},
        needs_approval=True,
        telemetry=StepTelemetry(latency_s=1.5, input_tokens=900, output_tokens=20),
    )
    return Thread(
        events=(
            UserInput(text="divide 12 by 2.5"),
            call,
            Approval(call_id=call.call_id, approved=True),
            ToolStarted(call_id=call.call_id),
            ToolResponse(call_id=call.call_id, result=4.8),
            Error(source="llm", message="could not parse the model's answer: hmm"),
        )
    )


def test_json_round_trip_keeps_every_event_and_type() -> None:
    thread = sample_thread()
    loaded = Thread.from_json(thread.to_json())
    assert loaded == thread
    assert [type(e) for e in loaded.events] == [type(e) for e in thread.events]


def test_json_rejects_unknown_event_types() -> None:
    raw = '{"id": "x", "events": [{"type": "telepathy", "at": "2026-01-01T00:00:00Z"}]}'
    with pytest.raises(ValidationError):
        Thread.from_json(raw)


def test_append_returns_a_new_thread() -> None:
    thread = Thread(events=(UserInput(text="hi"),))
    longer = thread.append(UserInput(text="again"))
    assert len(thread.events) == 1
    assert len(longer.events) == 2
    assert longer.id == thread.id


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (UserInput(text="hi"), Running),
        (ToolCall(intent="add", args={"a": 1, "b": 2}), Running),
        (ToolResponse(call_id="c1", result=3), Running),
        (Error(source="tool", message="boom"), Running),
    ],
)
def test_status_running(last: object, expected: type) -> None:
    assert isinstance(status(Thread(events=(last,))), expected)


def test_status_waiting_for_human_names_the_question_and_call() -> None:
    ask = ToolCall(intent="request_more_information", args={"message": "which number?"})
    current = status(Thread(events=(UserInput(text="add 2 and x"), ask)))
    assert current == WaitingForHuman(call_id=ask.call_id, question="which number?")


def test_status_waiting_for_approval_names_the_pending_call() -> None:
    call = ToolCall(intent="divide", args={"a": 1, "b": 2}, needs_approval=True)
    current = status(Thread(events=(UserInput(text="1/2"), call)))
    assert isinstance(current, WaitingForApproval)
    assert current.call.call_id == call.call_id
    assert current.call.args == {"a": 1, "b": 2}


def test_status_after_answer_and_approval_is_running_again() -> None:
    ask = ToolCall(intent="request_more_information", args={"message": "?"})
    answered = Thread(
        events=(UserInput(text="x"), ask, HumanResponse(call_id=ask.call_id, text="3"))
    )
    assert isinstance(status(answered), Running)


def test_status_done_and_failed() -> None:
    done = ToolCall(intent="done_for_now", args={"message": "It is 6."})
    assert status(Thread(events=(UserInput(text="x"), done))) == Done(message="It is 6.")
    assert isinstance(status(Thread()), FailedStatus)


def test_consecutive_errors_count_only_the_trailing_run() -> None:
    thread = Thread(
        events=(
            Error(source="llm", message="1"),
            UserInput(text="x"),
            Error(source="llm", message="2"),
            Error(source="tool", message="3"),
        )
    )
    assert thread.consecutive_errors() == 2
