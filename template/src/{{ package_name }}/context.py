"""The context window the LLM sees (factor 3): owned, compact, one tag per event.

    <user_input>
    can you multiply 3 and 4?
    </user_input>

    <multiply>
    a: 3
    b: 4
    </multiply>

    <tool_response>
    12
    </tool_response>

Bodies are YAML-ish; bookkeeping events (approvals, start markers, failures) are left
out unless they carry something the model must act on, such as a rejection's feedback.
"""

from __future__ import annotations

from typing import Any

import yaml

from .thread import (
    Approval,
    Error,
    Event,
    HumanResponse,
    Prefetched,
    Thread,
    ToolCall,
    ToolResponse,
    UserInput,
)

REJECTED_PREFIX = "user denied the operation with feedback: "


def format_number(value: Any) -> Any:
    """6.0 -> 6, so the model sees the same numbers a human would write."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _yaml(data: dict[str, Any]) -> str:
    clean = {key: format_number(value) for key, value in data.items()}
    return yaml.safe_dump(clean, sort_keys=False, allow_unicode=True, width=10_000).strip()


def _tag(name: str, body: str) -> str:
    return f"<{name}>\n{body}\n</{name}>"


def render_event(event: Event) -> str | None:
    match event:
        case UserInput(text=text):
            return _tag("user_input", text)
        case Prefetched(name=name, data=data):
            return _tag(name, _yaml(data))
        case ToolCall(intent=intent, args=args):
            return _tag(intent, _yaml(args))
        case ToolResponse(result=result):
            return _tag("tool_response", str(format_number(result)))
        case HumanResponse(text=text):
            return _tag("human_response", text)
        case Approval(approved=False, feedback=feedback):
            return _tag("tool_response", REJECTED_PREFIX + (feedback or "no reason given"))
        case Error(message=message):
            return _tag("error", message)
        case _:
            return None


def render_thread(thread: Thread) -> str:
    """The exact text passed as `thread` to DetermineNextStep."""
    parts = (render_event(event) for event in thread.events)
    return "\n\n".join(part for part in parts if part is not None)
