"""How threads look to a human in the terminal (markdown) and to programs (JSON)."""

from __future__ import annotations

from .agent import describe_call
from .context import format_number
from .thread import (
    Approval,
    Done,
    Error,
    Event,
    Failed,
    FailedStatus,
    HumanResponse,
    NotificationFailed,
    Prefetched,
    Running,
    Status,
    Thread,
    ToolCall,
    ToolResponse,
    ToolStarted,
    UserInput,
    WaitingForApproval,
    WaitingForHuman,
    status,
)


def _telemetry(call: ToolCall) -> str:
    t = call.telemetry
    if t is None:
        return ""
    tokens = f", {t.input_tokens} in / {t.output_tokens} out tokens" if t.input_tokens else ""
    return f" _({t.latency_s:.2f}s{tokens})_"


def event_line(event: Event) -> str:
    match event:
        case UserInput(text=text):
            return f"**user:** {text}"
        case Prefetched(name=name, data=data):
            return f"**prefetched {name}:** " + ", ".join(f"{k}={v}" for k, v in data.items())
        case ToolCall(intent="request_more_information"):
            return f"**agent asks:** {event.message}{_telemetry(event)}"
        case ToolCall(intent="done_for_now"):
            return f"**agent:** {event.message}{_telemetry(event)}"
        case ToolCall(needs_approval=needs):
            flag = " — needs approval" if needs else ""
            return (
                f"**call** `{describe_call(event)}` (id `{event.call_id}`){flag}{_telemetry(event)}"
            )
        case Approval(approved=True):
            return f"**approved** `{event.call_id}`"
        case Approval():
            return f"**rejected** `{event.call_id}`: {event.feedback or 'no reason given'}"
        case ToolStarted():
            return f"_started `{event.call_id}`_"
        case ToolResponse(result=result):
            return f"**result:** {format_number(result)}"
        case HumanResponse(text=text):
            return f"**human:** {text}"
        case Error(source=source, message=message):
            return f"**error ({source}):** {message}"
        case Failed(reason=reason):
            return f"**failed:** {reason}"
        case NotificationFailed(url=url, attempts=attempts, error=error):
            return f"_notification to {url} failed after {attempts} attempt(s): {error}_"
    raise AssertionError(f"unhandled event {event!r}")


def status_line(current: Status) -> str:
    match current:
        case Running():
            return "running"
        case WaitingForHuman(question=question, call_id=call_id):
            return f"waiting for a human answer to {call_id}: {question}"
        case WaitingForApproval(call=call):
            return f"waiting for approval of {describe_call(call)} (call id {call.call_id})"
        case Done(message=message):
            return f"done: {message}"
        case FailedStatus(reason=reason):
            return f"failed: {reason}"


def to_markdown(thread: Thread) -> str:
    lines = [f"# Thread `{thread.id}`", "", f"**status:** {status_line(status(thread))}", ""]
    lines += [f"{index}. {event_line(event)}" for index, event in enumerate(thread.events)]
    return "\n".join(lines)
