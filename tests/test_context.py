"""The context format the model sees, and the prompt's examples that must match it."""

from __future__ import annotations

import re
from pathlib import Path

from calculator_agent.context import render_thread
from calculator_agent.thread import (
    Approval,
    Error,
    Event,
    Failed,
    HumanResponse,
    Thread,
    ToolCall,
    ToolResponse,
    ToolStarted,
    UserInput,
)

AGENT_BAML = Path(__file__).resolve().parents[1] / "baml_src" / "agent.baml"


def thread(*events: Event) -> Thread:
    return Thread(events=events)


def test_one_tag_per_event_and_bookkeeping_left_out() -> None:
    call = ToolCall(intent="divide", args={"a": 12.0, "b": 2}, needs_approval=True)
    rendered = render_thread(
        thread(
            UserInput(text="12 / 2, then add 1"),
            call,
            Approval(call_id=call.call_id, approved=True),
            ToolStarted(call_id=call.call_id),
            ToolResponse(call_id=call.call_id, result=6.0),
            Failed(reason="x"),
        )
    )
    assert rendered == (
        "<user_input>\n12 / 2, then add 1\n</user_input>\n\n"
        "<divide>\na: 12\nb: 2\n</divide>\n\n"
        "<tool_response>\n6\n</tool_response>"
    )


def test_a_rejection_reads_as_a_tool_response_with_the_feedback() -> None:
    call = ToolCall(intent="divide", args={"a": 1, "b": 2}, needs_approval=True)
    rendered = render_thread(
        thread(call, Approval(call_id=call.call_id, approved=False, feedback="use 5"))
    )
    assert rendered.endswith(
        "<tool_response>\nuser denied the operation with feedback: use 5\n</tool_response>"
    )


def test_questions_answers_and_errors() -> None:
    ask = ToolCall(intent="request_more_information", args={"message": "Which number?"})
    rendered = render_thread(
        thread(ask, HumanResponse(call_id=ask.call_id, text="7"), Error(source="llm", message="x"))
    )
    assert rendered == (
        "<request_more_information>\nmessage: Which number?\n</request_more_information>\n\n"
        "<human_response>\n7\n</human_response>\n\n"
        "<error>\nx\n</error>"
    )


def test_the_prompt_examples_are_written_in_the_context_format() -> None:
    """Few-shot threads that drift from render_thread would teach the model a wrong format."""
    source = AGENT_BAML.read_text()
    examples = re.findall(r'\{\{ Example\("(.*?)", \'', source)
    assert len(examples) >= 5
    for example in examples:
        text = example.replace("\\n", "\n")
        blocks = text.split("\n\n")
        events: list[Event] = []
        for block in blocks:
            match = re.fullmatch(r"<(\w+)>\n(.*)\n</\1>", block, flags=re.S)
            assert match, f"not one tag per block: {block!r}"
            tag, body = match.groups()
            if tag == "user_input":
                events.append(UserInput(text=body))
            elif tag == "error":
                events.append(Error(source="llm", message=body))
            elif tag == "tool_response":
                events.append(ToolResponse(call_id="c", result=body))
            else:
                fields = dict(line.split(": ", 1) for line in body.splitlines())
                args = {key: int(value) for key, value in fields.items()}
                events.append(ToolCall(call_id="c", intent=tag, args=args))
        assert render_thread(thread(*events)) == text
