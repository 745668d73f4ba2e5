"""Helpers shared by the store, runner and server tests: a scripted LLM and PostgreSQL."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from calculator_agent.agent import Decision
from calculator_agent.context import format_number
from calculator_agent.postgres_store import PostgresStore
from calculator_agent.thread import (
    Approval,
    Error,
    HumanResponse,
    Thread,
    ToolResponse,
    UserInput,
)

_OPERATION = re.compile(
    r"\b(add|subtract|multiply|divide)\s+(-?\d+(?:\.\d+)?)\s+(?:and|by|from|to|with)\s+"
    r"(-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


class CalculatorBrain:
    """A scripted LLM: deterministic decisions read from the thread, like the prompt asks.

    "divide 10 by 4" -> divide(a=10, b=4); a tool response -> done with the result; a
    rejection -> done quoting the feedback; anything else -> ask what to calculate.
    `gate` (if given) blocks every call until set, to hold a loop mid-flight.
    """

    def __init__(self, *, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, thread: Thread) -> Decision:
        with self._lock:
            self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(timeout=20), "the test never opened the gate"
        if self.delay_s:
            time.sleep(self.delay_s)
        relevant = [
            e
            for e in thread.events
            if isinstance(e, UserInput | HumanResponse | ToolResponse | Approval | Error)
        ]
        match relevant[-1] if relevant else None:
            case ToolResponse(result=result):
                answer = f"The answer is {format_number(result)}."
                return Decision("done_for_now", {"message": answer})
            case Approval(approved=False, feedback=feedback):
                return Decision("done_for_now", {"message": f"Not dividing: {feedback}"})
            case UserInput(text=text) | HumanResponse(text=text):
                found = _OPERATION.search(text)
                if found:
                    op, a, b = found.groups()
                    return Decision(op.lower(), {"a": _number(a), "b": _number(b)})
        return Decision("request_more_information", {"message": "What should I calculate?"})


def wait_until(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


# --- PostgreSQL -----------------------------------------------------------------------

_PG_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


@functools.cache
def postgres_url() -> str | None:
    """The local test database's URL, or None when no server is reachable."""
    for url in _PG_CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return url
        except psycopg.Error:
            continue
    return None


NO_POSTGRES = "no PostgreSQL server reachable on 127.0.0.1:5432 (user postgres or root, db test)"


def require_postgres() -> str:
    """The URL, or skip (fail where AGENT_REQUIRE_POSTGRES=1, so CI cannot skip silently)."""
    url = postgres_url()
    if url is None:
        if os.environ.get("AGENT_REQUIRE_POSTGRES") == "1":
            pytest.fail(NO_POSTGRES + " and AGENT_REQUIRE_POSTGRES=1")
        pytest.skip(NO_POSTGRES)
    return url


@contextlib.contextmanager
def postgres_store(url: str) -> Iterator[PostgresStore]:
    """A PostgresStore in a fresh schema, dropped afterwards: tests never collide."""
    schema = f"test_{uuid.uuid4().hex[:10]}"
    store = PostgresStore(url, schema=schema)
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
