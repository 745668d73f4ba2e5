"""The thread: the agent's only state.

A thread is an append-only list of typed events. Everything else (what the agent does
next, whether it waits for a human, whether it is done) is derived from it, so a thread
loaded from storage in any process can be resumed exactly where it stopped.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Number = int | float
ToolResult = Number | str

# Intents every agent has, whatever its tools: they hand control back to a human.
ASK_HUMAN = "request_more_information"
DONE = "done_for_now"


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def _now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime = Field(default_factory=_now)


class UserInput(_Event):
    """A request from a human (CLI, HTTP, webhook...)."""

    type: Literal["user_input"] = "user_input"
    text: str


class Prefetched(_Event):
    """Deterministic context fetched before the first LLM call (factor 13)."""

    type: Literal["prefetched"] = "prefetched"
    name: str
    data: dict[str, Any]


class StepTelemetry(BaseModel):
    """What one LLM call cost: recorded with the step it produced."""

    model_config = ConfigDict(frozen=True)

    latency_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None


class ToolCall(_Event):
    """The model's chosen next step: a tool to run, a question, or the final answer."""

    type: Literal["tool_call"] = "tool_call"
    call_id: str = Field(default_factory=new_id)
    intent: str
    args: dict[str, Any]
    needs_approval: bool = False
    telemetry: StepTelemetry | None = None

    @property
    def message(self) -> str:
        return str(self.args.get("message", ""))


class Approval(_Event):
    """A human's decision on a call that needs approval."""

    type: Literal["approval"] = "approval"
    call_id: str
    approved: bool
    feedback: str | None = None


class ToolStarted(_Event):
    """Written before a tool runs, so a crash mid-call is visible and never retried blindly."""

    type: Literal["tool_started"] = "tool_started"
    call_id: str


class ToolResponse(_Event):
    type: Literal["tool_response"] = "tool_response"
    call_id: str
    result: ToolResult


class HumanResponse(_Event):
    """A human's answer to a request_more_information call."""

    type: Literal["human_response"] = "human_response"
    call_id: str
    text: str


class Error(_Event):
    """A compact error (factor 9): the model sees it and can correct course."""

    type: Literal["error"] = "error"
    source: Literal["llm", "tool", "system"]
    message: str


class Failed(_Event):
    type: Literal["failed"] = "failed"
    reason: str


class NotificationFailed(_Event):
    """A pause notification that could not be delivered: bookkeeping for humans, never for
    the LLM, and never a change of status (the thread still waits for its answer)."""

    type: Literal["notification_failed"] = "notification_failed"
    call_id: str
    url: str
    attempts: int
    error: str


Event = Annotated[
    UserInput
    | Prefetched
    | ToolCall
    | Approval
    | ToolStarted
    | ToolResponse
    | HumanResponse
    | Error
    | Failed
    | NotificationFailed,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class Thread(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id)
    events: tuple[Event, ...] = ()

    def append(self, event: Event) -> Thread:
        return self.model_copy(update={"events": (*self.events, event)})

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Thread:
        return cls.model_validate_json(raw)

    def call(self, call_id: str) -> ToolCall | None:
        for event in self.events:
            if isinstance(event, ToolCall) and event.call_id == call_id:
                return event
        return None

    def consecutive_errors(self) -> int:
        count = 0
        for event in reversed(self.events):
            if isinstance(event, Error):
                count += 1
            elif not isinstance(event, ToolStarted):
                break
        return count


# --- derived status -------------------------------------------------------------------


class Running(BaseModel):
    """Work is due: the loop should call the LLM or run a tool."""

    kind: Literal["running"] = "running"


class WaitingForHuman(BaseModel):
    kind: Literal["waiting_for_human"] = "waiting_for_human"
    call_id: str
    question: str


class WaitingForApproval(BaseModel):
    kind: Literal["waiting_for_approval"] = "waiting_for_approval"
    call: ToolCall


class Done(BaseModel):
    kind: Literal["done"] = "done"
    message: str


class FailedStatus(BaseModel):
    kind: Literal["failed"] = "failed"
    reason: str


Status = Running | WaitingForHuman | WaitingForApproval | Done | FailedStatus
STATUS_KINDS = ("running", "waiting_for_human", "waiting_for_approval", "done", "failed")


def status(thread: Thread) -> Status:
    """Derive where the thread stands from its last event."""
    # Delivery notes say nothing about where the thread stands: look past them.
    last = next((e for e in reversed(thread.events) if not isinstance(e, NotificationFailed)), None)
    if last is None:
        return FailedStatus(reason="empty thread")
    match last:
        case ToolCall(intent=intent) if intent == DONE:
            return Done(message=last.message)
        case ToolCall(intent=intent) if intent == ASK_HUMAN:
            return WaitingForHuman(call_id=last.call_id, question=last.message)
        case ToolCall(needs_approval=True):
            return WaitingForApproval(call=last)
        case Failed(reason=reason):
            return FailedStatus(reason=reason)
        case _:
            return Running()
