"""The agent: a reducer over the thread, the switch over intents, and the loop.

Nothing here does I/O. The LLM call (`NextStep`) and the tools are injected, so the
same loop runs under the CLI, the HTTP server, and tests with a scripted next step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .thread import (
    ASK_HUMAN,
    DONE,
    Approval,
    Error,
    Event,
    Failed,
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
from .tools import Toolbox, run_tool

MAX_CONSECUTIVE_ERRORS = 3


class InvalidEventError(ValueError):
    """An event that does not fit what the thread is waiting for."""


@dataclass(frozen=True)
class Decision:
    """What the LLM chose: an intent and its arguments."""

    intent: str
    args: dict[str, Any]
    telemetry: StepTelemetry | None = None


class NextStepError(Exception):
    """The LLM step failed (unparseable answer, server unreachable...): becomes an error event."""


class NextStep(Protocol):
    def __call__(self, thread: Thread) -> Decision: ...


# --- reducer --------------------------------------------------------------------------


def step(thread: Thread, event: Event) -> Thread:
    """agent(thread, event) -> thread (factor 12). Rejects events the thread is not waiting for."""
    current = status(thread)
    where = f"thread {thread.id} is {current.kind}"
    match event:
        case UserInput():
            if isinstance(current, WaitingForApproval | WaitingForHuman):
                raise InvalidEventError(f"{where}; answer that first")
        case HumanResponse(call_id=call_id):
            if not isinstance(current, WaitingForHuman):
                raise InvalidEventError(
                    f"thread {thread.id} is {current.kind}, not waiting for an answer"
                )
            if call_id != current.call_id:
                raise InvalidEventError(
                    f"thread {thread.id} waits for an answer to {current.call_id}"
                )
        case Approval(call_id=call_id):
            if not isinstance(current, WaitingForApproval):
                raise InvalidEventError(
                    f"thread {thread.id} is {current.kind}, not waiting for approval"
                )
            if call_id != current.call.call_id:
                raise InvalidEventError(
                    f"thread {thread.id} waits for approval of {current.call.call_id},"
                    f" not {call_id}"
                )
        case _:
            if not isinstance(current, Running):
                raise InvalidEventError(
                    f"thread {thread.id} is {current.kind}; it takes no {event.type}"
                )
    return thread.append(event)


# --- what to do next, derived from the thread ---------------------------------------


@dataclass(frozen=True)
class CallLLM:
    pass


@dataclass(frozen=True)
class RunTool:
    call: ToolCall


@dataclass(frozen=True)
class AskHuman:
    """The loop must stop guessing and ask a human (too many errors, unknown outcome)."""

    question: str


@dataclass(frozen=True)
class Pause:
    pass


Action = CallLLM | RunTool | AskHuman | Pause


def next_action(thread: Thread, max_errors: int = MAX_CONSECUTIVE_ERRORS) -> Action:
    if not isinstance(status(thread), Running):
        return Pause()
    last = thread.events[-1]
    match last:
        case ToolCall():  # a sync tool, chosen and not yet run
            return RunTool(last)
        case Approval(approved=True, call_id=call_id):
            call = thread.call(call_id)
            assert call is not None, "approval of an unknown call"  # step() guarantees it
            return RunTool(call)
        case ToolStarted(call_id=call_id):
            call = thread.call(call_id)
            described = describe_call(call) if call else call_id
            return AskHuman(
                f"{described} was started but the process stopped before it finished, so its "
                "outcome is unknown. Should I run it again?"
            )
        case Error() if thread.consecutive_errors() >= max_errors:
            return AskHuman(
                f"I hit {max_errors} errors in a row; the last was: {last.message}. "
                "How should I proceed?"
            )
        case _:
            return CallLLM()


def describe_call(call: ToolCall) -> str:
    args = ", ".join(f"{key}={value}" for key, value in call.args.items())
    return f"{call.intent}({args})"


# --- the switch -----------------------------------------------------------------------


def to_event(decision: Decision, tools: Toolbox) -> Event:
    """Turn the model's chosen intent into the next event."""
    match decision.intent:
        case intent if intent in (ASK_HUMAN, DONE):
            return ToolCall(intent=intent, args=decision.args, telemetry=decision.telemetry)
        case intent if intent in tools:
            return ToolCall(
                intent=intent,
                args=decision.args,
                needs_approval=tools[intent].needs_approval,
                telemetry=decision.telemetry,
            )
        case intent:
            return Error(source="llm", message=f"unknown intent {intent!r}")


# --- the loop -------------------------------------------------------------------------

OnEvent = Callable[[Thread, Event], None]


def run_until_pause(
    thread: Thread,
    next_step: NextStep,
    tools: Toolbox,
    *,
    max_steps: int = 10,
    max_errors: int = MAX_CONSECUTIVE_ERRORS,
    on_event: OnEvent | None = None,
) -> Thread:
    """Drive the thread until it needs a human, is done, or hits the step cap.

    `on_event` sees every event right after it is appended (persist it there), so a
    crash loses nothing and a tool start is recorded before the tool runs.
    """

    def emit(event: Event) -> None:
        nonlocal thread
        thread = step(thread, event)
        if on_event is not None:
            on_event(thread, event)

    llm_calls = 0
    while True:
        match next_action(thread, max_errors):
            case Pause():
                return thread
            case AskHuman(question=question):
                emit(ToolCall(intent=ASK_HUMAN, args={"message": question}))
            case RunTool(call=call):
                emit(ToolStarted(call_id=call.call_id))
                emit(_execute(call, tools))
            case CallLLM():
                if llm_calls >= max_steps:
                    emit(Failed(reason=f"step limit reached: {max_steps} LLM calls in one run"))
                    continue
                llm_calls += 1
                try:
                    decision = next_step(thread)
                except NextStepError as exc:
                    emit(Error(source="llm", message=str(exc)))
                else:
                    emit(to_event(decision, tools))


def _execute(call: ToolCall, tools: Toolbox) -> Event:
    tool = tools.get(call.intent)
    if tool is None:
        return Error(source="system", message=f"no tool named {call.intent!r}")
    try:
        result = run_tool(tool, call.args)
    except Exception as exc:  # a tool is user code: any failure is compacted, not raised
        return Error(source="tool", message=f"{describe_call(call)} failed: {exc}")
    return ToolResponse(call_id=call.call_id, result=result)
