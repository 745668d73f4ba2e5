"""The HTTP API (factor 6 and 11): launch, read, answer and fork threads; an inbound
webhook; health. The thread in the store is the only state: any number of these
processes can serve the same database.

Build it with `create_app(settings)`; `calculator-agent serve` runs it under uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import RootModel, ValidationError

from ..agent import InvalidEventError, NextStep
from ..runner import Runner
from ..settings import Settings, get_settings
from ..store import ConflictError, Stored, ThreadNotFoundError, ThreadStore, open_store
from ..thread import status
from ..tools import TOOLS, Toolbox
from .auth import bearer_guard
from .health import probe_llm, probe_store
from .loops import LoopScheduler
from .notify import Notifier
from .schemas import (
    Accepted,
    Answer,
    Forked,
    ForkRequest,
    Health,
    LaunchRequest,
    LLMHealth,
    MessageRequest,
    StatusKind,
    ThreadList,
    ThreadSummary,
    ThreadView,
    WebhookRequest,
    links,
    thread_view,
)
from .service import ThreadService
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify

log = logging.getLogger(__name__)

DESCRIPTION = """
A 12-factor calculator agent as a service. Launch a thread with a message; the loop runs
in the background and pauses when it needs a human (an approval for `divide`, or an
answer to a question). Read the thread to see exactly what it waits for, then POST the
answer. Every event is stored as it happens, so a restarted server picks up where the
last one stopped.

Mutating endpoints need `Authorization: Bearer <AGENT_API_TOKEN>` when that is set. The
inbound webhook is authenticated by its HMAC-SHA256 signature instead.
"""


class AnswerBody(RootModel[Answer]):
    """One of: approve, reject (with feedback), or reply (with text), for a call id."""


@dataclass
class Services:
    """What the app runs on; exposed as app.state.agent for tests and embedding."""

    settings: Settings
    store: ThreadStore
    runner: Runner
    scheduler: LoopScheduler
    service: ThreadService


def create_app(
    settings: Settings | None = None,
    *,
    store: ThreadStore | None = None,
    next_step: NextStep | None = None,
    tools: Toolbox = TOOLS,
    llm_probe: Callable[[], LLMHealth] | None = None,
) -> FastAPI:
    """The app over `store` (default: the one `database_url` names; closed on shutdown)
    and `next_step` (default: the BAML call the settings configure)."""
    settings = settings or get_settings()
    # Configuration errors first, before a store (a connection pool) is opened.
    notifier = _notifier(settings)
    if next_step is None:
        from ..llm import BamlNextStep  # loads the BAML runtime only when used

        next_step = BamlNextStep(settings)
    owns_store = store is None
    if store is None:
        store = open_store(settings)
    runner = Runner(
        store,
        next_step,
        tools,
        max_steps=settings.max_steps,
        max_errors=settings.max_consecutive_errors,
        lease_ttl_s=settings.lease_ttl_s,
    )
    scheduler = LoopScheduler(
        runner,
        max_loops=settings.max_concurrent_loops,
        notifier=notifier,
        public_url=settings.public_url,
    )
    services = Services(settings, store, runner, scheduler, ThreadService(runner, scheduler))
    probe = llm_probe or partial(probe_llm, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The first sweep runs at once: threads a crashed process left are picked up
        # on start, and then whenever a lease held elsewhere expires.
        sweeper = asyncio.create_task(_sweep_forever(scheduler, settings.recovery_interval_s))
        try:
            yield
        finally:
            sweeper.cancel()
            await run_in_threadpool(scheduler.close)
            runner.leases.close()
            if owns_store:
                store.close()

    app = FastAPI(
        title="calculator-agent",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.agent = services
    _add_error_handlers(app)
    _add_routes(app, services, probe)
    return app


def _notifier(settings: Settings) -> Notifier | None:
    if not settings.notify_url:
        return None
    secret = settings.notify_secret or settings.webhook_secret
    if secret is None:
        raise ValueError(
            "AGENT_NOTIFY_URL is set but nothing to sign with: set AGENT_NOTIFY_SECRET"
            " (or AGENT_WEBHOOK_SECRET)"
        )
    return Notifier(
        settings.notify_url,
        secret.get_secret_value().encode(),
        attempts=settings.notify_attempts,
        backoff_s=settings.notify_backoff_s,
        timeout_s=settings.notify_timeout_s,
    )


async def _sweep_forever(scheduler: LoopScheduler, interval_s: float) -> None:
    while True:
        try:
            await run_in_threadpool(scheduler.recover)
        except Exception:  # a database blip must not end recovery for good
            log.exception("the recovery sweep failed; retrying in %.0fs", interval_s)
        await asyncio.sleep(interval_s)


def _add_error_handlers(app: FastAPI) -> None:
    # Domain errors carry messages written for the caller; map them to statuses once.
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ThreadNotFoundError)
        return JSONResponse({"detail": f"no thread {exc.args[0]!r}"}, status_code=404)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def invalid_body(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI's shape, minus `ctx` (exception objects that serialize as {}), plus one
        # line a human can read.
        errors = [{k: v for k, v in e.items() if k != "ctx"} for e in exc.errors()]
        summary = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors
        )
        return JSONResponse(
            jsonable_encoder({"detail": errors, "message": f"invalid request: {summary}"}),
            status_code=422,
        )

    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(ThreadNotFoundError, not_found)
    app.add_exception_handler(InvalidEventError, conflict)
    app.add_exception_handler(ConflictError, conflict)  # also ThreadBusyError


def _accepted(stored: Stored, response: Response) -> Accepted:
    where = links(stored.thread.id)
    response.headers["Location"] = where.thread
    return Accepted(thread_id=stored.thread.id, status=status(stored.thread).kind, links=where)


def _add_routes(app: FastAPI, services: Services, probe: Callable[[], LLMHealth]) -> None:
    settings, store, service = services.settings, services.store, services.service
    guarded = [Depends(bearer_guard(settings.api_token))]

    @app.post(
        "/threads",
        status_code=202,
        dependencies=guarded,
        tags=["threads"],
        responses={409: {"description": "A thread with this thread_id exists."}},
    )
    def launch_thread(body: LaunchRequest, response: Response) -> Accepted:
        """Launch a thread from a message or an external event; its loop runs in the
        background, so this returns at once."""
        return _accepted(service.launch(body.text(), body.thread_id), response)

    @app.get("/threads", tags=["threads"])
    def list_threads(
        status: Annotated[StatusKind | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> ThreadList:
        """Threads, most recently updated first, optionally only those with a status."""
        return ThreadList(
            threads=[
                ThreadSummary(
                    id=row.id,
                    status=row.status,
                    version=row.version,
                    updated_at=row.updated_at,
                    first_input=row.first_input,
                    links=links(row.id),
                )
                for row in store.list(status, limit)
            ]
        )

    @app.get("/threads/{thread_id}", tags=["threads"], responses={404: {}})
    def get_thread(thread_id: str) -> ThreadView:
        """A thread's events, its derived status, and exactly what it waits for."""
        stored = store.get(thread_id)
        return thread_view(stored.thread, stored.version, store.is_leased(thread_id))

    @app.post(
        "/threads/{thread_id}/answers",
        status_code=202,
        dependencies=guarded,
        tags=["threads"],
        responses={
            404: {"description": "No such thread."},
            409: {"description": "The thread does not wait for this (or is running)."},
        },
    )
    def answer_thread(thread_id: str, body: AnswerBody, response: Response) -> Accepted:
        """Approve or reject the pending call, or reply to the question, by its call id;
        the loop then continues in the background."""
        return _accepted(service.answer(thread_id, body.root), response)

    @app.post(
        "/threads/{thread_id}/messages",
        status_code=202,
        dependencies=guarded,
        tags=["threads"],
        responses={404: {}, 409: {"description": "The thread is running or waits for an answer."}},
    )
    def add_message(thread_id: str, body: MessageRequest, response: Response) -> Accepted:
        """Continue a thread (done, failed, or stalled) with a new request."""
        return _accepted(service.add_message(thread_id, body.message), response)

    @app.post(
        "/threads/{thread_id}/fork",
        status_code=201,
        dependencies=guarded,
        tags=["threads"],
        responses={404: {}, 422: {"description": "`at` is past the thread's last event."}},
    )
    def fork_thread(thread_id: str, body: ForkRequest, response: Response) -> Forked:
        """Copy events 0..at into a new thread; its loop starts if it has work due."""
        try:
            stored, started = service.fork(thread_id, body.at)
        except IndexError:
            last = len(store.get(thread_id).thread.events) - 1
            raise HTTPException(
                422, f"at={body.at} is out of range: thread {thread_id} has events 0..{last}"
            ) from None
        response.headers["Location"] = links(stored.thread.id).thread
        return Forked(
            thread_id=stored.thread.id,
            forked_from=thread_id,
            at=body.at,
            status=status(stored.thread).kind,
            started=started,
            links=links(stored.thread.id),
        )

    @app.post(
        "/webhooks/inbound",
        status_code=202,
        tags=["webhooks"],
        responses={
            401: {"description": "Unsigned, wrongly signed, or outside the time window."},
            409: {"description": "Replayed, or the thread cannot take it now."},
            503: {"description": "No AGENT_WEBHOOK_SECRET is configured."},
        },
        openapi_extra={"requestBody": _webhook_body_schema()},
    )
    async def inbound_webhook(request: Request, response: Response) -> Accepted:
        """Launch or continue a thread from anywhere (factor 11). Sign the raw body:
        `X-Agent-Signature: sha256=HMAC_SHA256(secret, X-Agent-Timestamp + "." + body)`."""
        if settings.webhook_secret is None:
            raise HTTPException(503, "the webhook is disabled: set AGENT_WEBHOOK_SECRET")
        raw = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        try:
            verify(
                settings.webhook_secret.get_secret_value().encode(),
                request.headers.get(TIMESTAMP_HEADER),
                signature,
                raw,
                tolerance_s=settings.webhook_tolerance_s,
            )
        except SignatureError as exc:
            raise HTTPException(401, str(exc)) from None
        try:
            body = WebhookRequest.model_validate_json(raw)
        except ValidationError as exc:
            # Located under "body" like FastAPI's own body errors.
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors]
            ) from None
        # Kept twice the window: a signature older than that fails the time check anyway.
        assert signature is not None
        first = await run_in_threadpool(
            store.remember, f"webhook:{signature.strip()}", 2 * settings.webhook_tolerance_s
        )
        if not first:
            raise HTTPException(
                409, "replayed request: this signature was used already; sign each request anew"
            )
        stored = await run_in_threadpool(_dispatch, service, store, body)
        return _accepted(stored, response)

    @app.get("/health", tags=["health"])
    def health(response: Response) -> Health:
        """Whether the store and the LLM endpoint answer. 503 when the store does not; the
        LLM down is "degraded": launches are kept and run once it answers again."""
        store_health = probe_store(store)
        llm = probe()
        if not store_health.ok:
            response.status_code = 503
            overall = "down"
        else:
            overall = "ok" if llm.answering is not False else "degraded"
        return Health(
            status=overall,
            store=store_health,
            llm=llm,
            loops_running=services.scheduler.busy,
        )


def _dispatch(service: ThreadService, store: ThreadStore, body: WebhookRequest) -> Stored:
    if body.answer is not None:
        assert body.thread_id is not None  # the body's validator demands it
        return service.answer(body.thread_id, body.answer)
    text = body.message if body.message is not None else body.event.as_text()  # type: ignore[union-attr]
    if body.thread_id is not None and _exists(store, body.thread_id):
        return service.add_message(body.thread_id, text)
    return service.launch(text, body.thread_id)


def _exists(store: ThreadStore, thread_id: str) -> bool:
    try:
        store.get(thread_id)
    except ThreadNotFoundError:
        return False
    return True


def _webhook_body_schema() -> dict[str, Any]:
    # The route reads the raw body (the signature covers its exact bytes), so FastAPI
    # cannot infer the schema: document it by hand.
    schema = WebhookRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"required": True, "content": {"application/json": {"schema": schema}}}
