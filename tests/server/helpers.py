"""Test helpers for the server: a scripted calculator brain, waiting, a receiver, stores."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from calculator_agent.agent import Decision
from calculator_agent.context import format_number
from calculator_agent.postgres_store import PostgresStore
from calculator_agent.server.app import Services
from calculator_agent.settings import Settings
from calculator_agent.thread import (
    Approval,
    Error,
    HumanResponse,
    Thread,
    ToolResponse,
    UserInput,
)

# make_app(...) -> (an entered TestClient, the app's services); see conftest.py.
MakeApp = Callable[..., tuple[TestClient, Services]]


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    # No .env and no AGENT_* surprises from the environment of whoever runs the tests.
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


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


def settle(client: Any, thread_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET the thread until no loop holds it and it is not running; returns the view."""

    def settled() -> dict[str, Any] | None:
        response = client.get(f"/threads/{thread_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        if not view["loop_active"] and view["status"] != "running":
            return view
        return None

    result: dict[str, Any] = wait_until(settled, timeout)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- a local receiver for outbound notifications --------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Status codes to answer, in order; 200 once they run out.
    script: list[int] = field(default_factory=list)


@contextlib.contextmanager
def receiver(script: list[int] | None = None) -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records every POST."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook", script=list(script or []))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(Received(dict(self.headers.items()), body))
                code = state.script.pop(0) if state.script else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


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


# --- a real `calculator-agent serve` process ------------------------------------------


@dataclass
class ServerProcess:
    """`calculator-agent serve` in a child process on a free 127.0.0.1 port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> ServerProcess:
        cli = Path(sys.executable).with_name("calculator-agent")
        command = [str(cli), "serve", "--port", str(self.port), "--log-level", "info"]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        environment.update({"AGENT_DATA_DIR": str(self.data_dir), **self.env})
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, every=0.2)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
