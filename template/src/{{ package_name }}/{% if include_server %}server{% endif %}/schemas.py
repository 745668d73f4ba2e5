"""What goes over the wire: request bodies, responses, and how a thread looks in JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..agent import describe_call
from ..runner import THREAD_ID_PATTERN
from ..thread import (
    STATUS_KINDS,
    Approval,
    Done,
    Event,
    FailedStatus,
    HumanResponse,
    Thread,
    WaitingForApproval,
    WaitingForHuman,
    status,
)

StatusKind = Literal["running", "waiting_for_human", "waiting_for_approval", "done", "failed"]
assert set(get_args(StatusKind)) == set(STATUS_KINDS), "StatusKind must follow thread.py"

ThreadId = Annotated[str, Field(pattern=THREAD_ID_PATTERN, examples=["ticket-4711"])]
Text = Annotated[str, Field(min_length=1, max_length=10_000)]


class _Body(BaseModel):
    # A misspelled field is a 422, not silently ignored.
    model_config = ConfigDict(extra="forbid")


# --- requests -------------------------------------------------------------------------


class ExternalEvent(_Body):
    """Something that happened elsewhere (an alert, a form, a cron tick) that starts work."""

    source: str = Field(min_length=1, max_length=100, examples=["billing"])
    type: str = Field(min_length=1, max_length=100, examples=["invoice.split"])
    data: dict[str, Any] = Field(default_factory=dict, examples=[{"total": 120, "people": 4}])

    def as_text(self) -> str:
        """How the event enters the thread: a user_input the model reads like any other."""
        body = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True).strip()
        return f"{self.source} event {self.type}" + (f":\n{body}" if self.data else "")


def _exactly_one(model: BaseModel, *names: str) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of: {', '.join(names)} (got {len(given)})")


class LaunchRequest(_Body):
    message: Text | None = Field(None, examples=["what is 10 divided by 4?"])
    event: ExternalEvent | None = None
    thread_id: ThreadId | None = Field(
        None, description="Your own id for the thread (idempotency); 409 if it exists."
    )

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        _exactly_one(self, "message", "event")
        return self

    def text(self) -> str:
        return self.message if self.message is not None else self.event.as_text()  # type: ignore[union-attr]


class Approve(_Body):
    type: Literal["approve"]
    call_id: str = Field(min_length=1, description="The pending call's id (see waiting_for).")


class Reject(_Body):
    type: Literal["reject"]
    call_id: str = Field(min_length=1)
    feedback: Text = Field(description="Why, and what to do instead: the model reads it.")


class Reply(_Body):
    type: Literal["reply"]
    call_id: str = Field(min_length=1, description="The question's call id (see waiting_for).")
    text: Text


Answer = Annotated[Approve | Reject | Reply, Field(discriminator="type")]


def answer_event(answer: Approve | Reject | Reply) -> Approval | HumanResponse:
    match answer:
        case Approve(call_id=call_id):
            return Approval(call_id=call_id, approved=True)
        case Reject(call_id=call_id, feedback=feedback):
            return Approval(call_id=call_id, approved=False, feedback=feedback)
        case Reply(call_id=call_id, text=text):
            return HumanResponse(call_id=call_id, text=text)


class MessageRequest(_Body):
    message: Text = Field(examples=["now multiply that by 3"])


class ForkRequest(_Body):
    at: int = Field(ge=0, description="Keep events 0..at (inclusive) of the source thread.")


class WebhookRequest(_Body):
    """Launch (message or event, optionally with your thread id), continue a thread with a
    new message, or answer what it waits for."""

    thread_id: ThreadId | None = None
    message: Text | None = None
    event: ExternalEvent | None = None
    answer: Answer | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        _exactly_one(self, "message", "event", "answer")
        if self.answer is not None and self.thread_id is None:
            raise ValueError("an answer needs the thread_id it answers")
        return self


# --- responses ------------------------------------------------------------------------


class Links(BaseModel):
    thread: str
    answers: str
    messages: str
    fork: str


def links(thread_id: str, base: str = "") -> Links:
    root = f"{base.rstrip('/')}/threads/{thread_id}"
    return Links(
        thread=root, answers=f"{root}/answers", messages=f"{root}/messages", fork=f"{root}/fork"
    )


class Accepted(BaseModel):
    thread_id: str
    status: StatusKind
    links: Links


class WaitingFor(BaseModel):
    """Exactly what a paused thread needs, and how to give it."""

    kind: Literal["approval", "reply"]
    call_id: str
    question: str
    intent: str | None = Field(None, description="The call to approve (approval only).")
    args: dict[str, Any] | None = None
    answer_with: list[dict[str, Any]] = Field(description="Bodies to POST to the answers link.")


def waiting_for(thread: Thread) -> WaitingFor | None:
    match status(thread):
        case WaitingForApproval(call=call):
            return WaitingFor(
                kind="approval",
                call_id=call.call_id,
                question=f"Approve {describe_call(call)}?",
                intent=call.intent,
                args=call.args,
                answer_with=[
                    {"type": "approve", "call_id": call.call_id},
                    {"type": "reject", "call_id": call.call_id, "feedback": "why not"},
                ],
            )
        case WaitingForHuman(call_id=call_id, question=question):
            return WaitingFor(
                kind="reply",
                call_id=call_id,
                question=question,
                answer_with=[{"type": "reply", "call_id": call_id, "text": "your answer"}],
            )
        case _:
            return None


class ThreadView(BaseModel):
    id: str
    version: int
    status: StatusKind
    loop_active: bool = Field(description="A loop holds the thread right now (anywhere).")
    waiting_for: WaitingFor | None
    result: str | None = Field(None, description="The final answer, once done.")
    failure: str | None = None
    events: list[Event]
    links: Links


def thread_view(thread: Thread, version: int, loop_active: bool) -> ThreadView:
    current = status(thread)
    return ThreadView(
        id=thread.id,
        version=version,
        status=current.kind,
        loop_active=loop_active,
        waiting_for=waiting_for(thread),
        result=current.message if isinstance(current, Done) else None,
        failure=current.reason if isinstance(current, FailedStatus) else None,
        events=list(thread.events),
        links=links(thread.id),
    )


class ThreadSummary(BaseModel):
    id: str
    status: StatusKind
    version: int
    updated_at: datetime
    first_input: str
    links: Links


class ThreadList(BaseModel):
    threads: list[ThreadSummary]


class Forked(BaseModel):
    thread_id: str
    forked_from: str
    at: int
    status: StatusKind
    started: bool = Field(description="True when the fork had work due and its loop started.")
    links: Links


class StoreHealth(BaseModel):
    kind: str
    ok: bool
    detail: str | None = None


class LLMHealth(BaseModel):
    client: str
    endpoint: str | None = None
    answering: bool | None = Field(description="None when this client's endpoint is not probed.")
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    store: StoreHealth
    llm: LLMHealth
    loops_running: int
